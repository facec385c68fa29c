package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var yamlLineRe = regexp.MustCompile(`^line (\d+): `)

// withPaths prefixes yaml's decoding messages, which give only a line
// ("line 3: cannot unmarshal !!str `maybe` into bool"), with the spec path
// of the value they are about ("links.nofollow: line 3: ..."), so every
// mistake names its field. A message it cannot place is kept as it is.
func withPaths(data []byte, msgs []string) []string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return msgs
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m
		sm := yamlLineRe.FindStringSubmatch(m)
		if sm == nil {
			continue
		}
		line, _ := strconv.Atoi(sm[1])
		if p := locate(&root, line, m); p != "" {
			out[i] = p + ": " + m
		}
	}
	return out
}

// locate finds the path of the value (or, for an unknown field, the key)
// at line that msg quotes; failing that, of the first value on that line.
func locate(root *yaml.Node, line int, msg string) string {
	var best, first string
	walk(root, "", 0, func(path string, key, val *yaml.Node) {
		if best != "" {
			return
		}
		if key != nil && key.Line == line && strings.Contains(msg, "field "+key.Value+" not found") {
			best = path
			return
		}
		if val.Kind != yaml.ScalarNode || val.Line != line {
			return
		}
		if strings.Contains(msg, "`"+val.Value+"`") {
			best = path
		} else if first == "" {
			first = path
		}
	})
	if best != "" {
		return best
	}
	return first
}

// walk visits every mapping value and sequence element with its path.
// Aliases are not followed: they could loop.
func walk(n *yaml.Node, path string, depth int, visit func(path string, key, val *yaml.Node)) {
	if depth > 64 {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walk(c, path, depth+1, visit)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			visit(p, k, v)
			walk(v, p, depth+1, visit)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			visit(p, nil, c)
			walk(c, p, depth+1, visit)
		}
	}
}

// errPathRe is the spec path a validation message starts with
// ("items[0].fields.price.xpath ...").
var errPathRe = regexp.MustCompile(`^[a-z_]+(?:\[\d+\])?(?:\.[^\s.\[:"]+(?:\[\d+\])?)*`)

// withLines appends to each validation message the line of the value its
// path names, or of the nearest enclosing one present (a missing
// selector: its item rule's line), as " (line N)"; a message about the
// whole spec, or a key that is absent at the top, keeps no line.
func withLines(root *yaml.Node, errs Errors) Errors {
	lines := map[string]int{}
	walk(root, "", 0, func(path string, key, val *yaml.Node) {
		if key != nil {
			lines[path] = key.Line
		} else {
			lines[path] = val.Line
		}
	})
	out := make(Errors, len(errs))
	for i, m := range errs {
		out[i] = m
		for p := errPathRe.FindString(m); p != ""; p = parentPath(p) {
			if l, ok := lines[p]; ok {
				out[i] = fmt.Sprintf("%s (line %d)", m, l)
				break
			}
		}
	}
	return out
}

// parentPath is the path enclosing p ("a.b[2]" → "a.b" → "a" → "").
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// fieldOrder gives each item rule the order its fields are written in
// (a Go map forgets it), for export's columns; where the text does not
// give it plainly (an alias, a merge key), the sorted one, which is also
// what the rule's JSON then keeps.
func fieldOrder(root *yaml.Node, s *Spec) {
	top := root
	if top.Kind == yaml.DocumentNode && len(top.Content) > 0 {
		top = top.Content[0]
	}
	items := child(top, "items")
	for i := range s.Items {
		var names []string
		if items != nil && items.Kind == yaml.SequenceNode && i < len(items.Content) {
			if f := child(items.Content[i], "fields"); f != nil && f.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(f.Content); j += 2 {
					names = append(names, f.Content[j].Value)
				}
			}
		}
		s.Items[i].order = names
		s.Items[i].order = s.Items[i].FieldNames() // the written order if it names every field, else sorted
		if len(s.Items[i].order) == 0 {
			s.Items[i].order = nil
		}
	}
}

// child is the value of key in mapping n; nil when n is no mapping or
// lacks key.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
