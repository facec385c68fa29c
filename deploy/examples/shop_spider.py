#!/usr/bin/env python3
"""A crawlmesh command spider for the synthetic site (pkg/synthsite).

Standard library only. The mesh fetches every page and hands it over on
stdin, one JSON object a line:

    {"url": ..., "status": 200, "headers": {...}, "body": "<html>...",
     "depth": 0, "crawl": "...", "spider": "..."}

and reads the answer on stdout, one JSON object a line, in the same order:

    {"items": [{"name": "Item 7", "price": "8.17"}], "links": ["http://..."]}

It yields what the declarative spec of synthsite.Spec yields: one item per
<div class="item"> with the text of its .name and .price, and every
<a class="l" href> as a link. Anything printed on stderr goes to the
crawl's logs; an exception ends the process, which fails that page with
the traceback as its reason, and the mesh starts the spider again.
"""

import json
import sys
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin


def collapse(text):
    """Trim and turn runs of white space into one space, like the mesh."""
    return " ".join(text.split())


class ShopPage(HTMLParser):
    """Collects items (div.item > .name, .price) and links (a.l)."""

    # Elements that never have an end tag.
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input",
            "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.items = []
        self.links = []
        self.base = None
        self._depth = 0          # open elements
        self._item = None        # the item being read, and its depth
        self._item_depth = 0
        self._field = None       # field being read, its depth and text parts
        self._field_depth = 0
        self._text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        if tag == "a" and "l" in classes and a.get("href") is not None:
            rel = (a.get("rel") or "").lower().split()
            if "nofollow" not in rel:
                self.links.append(a["href"])
        if tag in self.VOID:
            return
        self._depth += 1
        if self._item is None and tag == "div" and "item" in classes:
            self._item, self._item_depth = {}, self._depth
        elif self._item is not None and self._field is None:
            for name in ("name", "price"):
                # The first element of each class wins, as a css field does.
                if name in classes and name not in self._item:
                    self._field, self._field_depth, self._text = name, self._depth, []
                    break

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self._field is not None and self._depth == self._field_depth:
            self._item[self._field] = collapse("".join(self._text))
            self._field = None
        if self._item is not None and self._depth == self._item_depth:
            # A field that selects nothing is "", as in a declarative spec.
            self.items.append({"name": self._item.get("name", ""),
                               "price": self._item.get("price", "")})
            self._item = None
        self._depth = max(0, self._depth - 1)

    def handle_data(self, data):
        if self._field is not None:
            self._text.append(data)


def parse(page):
    doc = ShopPage()
    doc.feed(page["body"])
    doc.close()
    # Links go back as written: the mesh resolves them against the page's
    # URL, canonicalises them and drops duplicates and what it cannot
    # fetch, so doing it here would only cost time (a third of this
    # spider's CPU). Only a <base href> needs resolving here, since the
    # mesh does not see it.
    links = [href.strip() for href in doc.links]
    if doc.base:
        base = urljoin(page["url"], doc.base)
        links = [urldefrag(urljoin(base, href))[0] for href in links]
    return {"items": doc.items, "links": links}


def main():
    # One page in, one answer out, flushed at once: the mesh waits for it.
    for line in sys.stdin:
        if not line.strip():
            continue
        page = json.loads(line)
        answer = parse(page)
        sys.stdout.write(json.dumps(answer, ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
