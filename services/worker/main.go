// Command worker runs a crawlmesh crawler node: it heartbeats in KV bucket
// nodes, obeys commands and runs crawl tasks. Every flag has a CRAWLMESH_*
// environment variable (see -h). `crawlmesh worker` runs the same node.
package main

import "github.com/crawlmesh/crawlmesh/services/internal/boot"

func main() { boot.Main("worker", boot.RunWorker) }
