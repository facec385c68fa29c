package spec

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/andybalholm/cascadia"
	"github.com/antchfx/xpath"
	"github.com/itchyny/gojq"

	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// checker collects mistakes; every check adds "path value: reason".
type checker struct{ errs Errors }

func (c *checker) add(format string, a ...any) { c.errs = append(c.errs, fmt.Sprintf(format, a...)) }

func checkSelector(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty")
	}
	_, err := cascadia.ParseGroup(s)
	return err
}

func checkXPath(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty")
	}
	_, err := xpath.Compile(s)
	return err
}

// checkJQ parses and compiles: undefined functions and variables are only
// found by compiling.
func checkJQ(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty")
	}
	q, err := gojq.Parse(s)
	if err != nil {
		return err
	}
	_, err = gojq.Compile(q)
	return err
}

func checkRegex(s string) error {
	if _, err := regexp.Compile(s); err != nil {
		return fmt.Errorf("bad regular expression: %v", err)
	}
	return nil
}

func checkGlob(g string) error {
	if g == "" {
		return errors.New("empty: give a parameter name or a glob such as utm_*")
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("bad glob: %v", err)
	}
	return nil
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q: want an http or https URL", u.Scheme)
	case u.Host == "":
		return errors.New("no host")
	}
	return nil
}

func (c *checker) sitemaps(s *Spec) {
	for i, sm := range s.Sitemaps {
		if sm == "robots" {
			continue
		}
		if err := checkHTTPURL(sm); err != nil {
			c.add("sitemaps[%d] %q: want \"robots\" or the http(s) URL of a sitemap", i, sm)
		} else if _, err := urlnorm.Canonical(sm); err != nil {
			c.add("sitemaps[%d] %q: %v", i, sm, strings.TrimPrefix(err.Error(), "urlnorm: "))
		}
	}
}

// normalize drops empty lists and maps: JSON (omitempty) cannot tell them
// from absent ones, and a spec must survive json.Marshal and Parse as it
// is (workers re-parse the stored JSON).
func (s *Spec) normalize() {
	nilEmpty(&s.StartURLs)
	nilEmpty(&s.AllowedDomains)
	nilEmpty(&s.Follow)
	nilEmpty(&s.Items)
	nilEmpty(&s.Sitemaps)
	for i := range s.Items {
		nilEmpty(&s.Items[i].Required)
	}
	if r := s.Request; r != nil {
		nilEmptyMap(&r.Headers)
		nilEmptyMap(&r.Cookies)
		nilEmpty(&r.Proxies)
	}
	if l := s.Login; l != nil {
		nilEmptyMap(&l.Form)
		nilEmpty(&l.ReloginOn)
	}
	if l := s.Links; l != nil {
		nilEmpty(&l.Follow)
		nilEmpty(&l.JSON)
		nilEmpty(&l.Allow)
		nilEmpty(&l.Deny)
		nilEmpty(&l.StripQuery)
	}
}

func nilEmpty[T any](l *[]T) {
	if len(*l) == 0 {
		*l = nil
	}
}

func nilEmptyMap(m *map[string]string) {
	if len(*m) == 0 {
		*m = nil
	}
}
