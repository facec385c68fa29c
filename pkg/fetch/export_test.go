package fetch

import "github.com/crawlmesh/crawlmesh/pkg/politeness"

// SetReleaseHook lets tests count the permits a Fetcher releases.
func SetReleaseHook(f *Fetcher, h func(host string, o politeness.Outcome)) { f.onRelease = h }
