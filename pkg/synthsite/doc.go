// Package synthsite serves a synthetic site of any size for benchmarks and
// load tests: pages of a set size (about 6 KB), each with a fixed number of
// links and exactly one item, like the pages assumed in BASELINES.md.
//
// The link graph is a pure function of the page number
// ([Config.LinksOf]), so a benchmark knows the ground truth (every page is
// reachable from page 0, one item per page) without crawling, and runs are
// repeatable.
package synthsite
