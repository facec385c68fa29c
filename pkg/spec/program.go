package spec

import (
	"regexp"
	"strings"
)

// CheckScript, when set, compiles a script at validation so a syntax
// error is refused at `spider apply` with its line and column. The
// binaries set it to the JavaScript engine's compiler (pkg/jsspider); the
// spec package itself stays free of the engine.
var CheckScript func(src string) error

// fileNameRe is a name in Object Store files (pkg/files validates the same).
var fileNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// programmable checks script, script_file, command and files.
func (c *checker) programmable(s *Spec) {
	var kinds []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"script", s.Script != ""}, {"script_file", s.ScriptFile != ""}, {"command", len(s.Command) > 0}, {"go", s.Go != ""}} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) > 1 {
		c.add("%s: a spider is one of script, script_file, command or go; choose one", strings.Join(kinds, " and "))
	}
	if s.Command != nil && len(s.Command) == 0 {
		// Else the spider is a declarative one with no rules: it fetched
		// its start URL and extracted nothing, without a word (review).
		c.add("command: empty; give the program and its arguments, e.g. [python3, spider.py]")
	}
	if len(s.Files) > 0 && len(s.Command) == 0 {
		c.add("files: only a command spider gets files in its working directory (script_file names a script's file)")
	}
	if !s.Programmable() {
		return
	}
	kind := kinds[0]
	if given := replacedFields(s); len(given) > 0 {
		c.add("%s: the spider's code returns the items and links; remove %s from the spec", kind, strings.Join(given, ", "))
	}
	if s.Script != "" && CheckScript != nil {
		if err := CheckScript(s.Script); err != nil {
			c.add("%v", err) // "script line L, column C: ..."
		}
	}
	if s.ScriptFile != "" && !fileNameRe.MatchString(s.ScriptFile) {
		c.add("script_file %q: not a file name (letters, digits, '.', '_', '-'; up to 128; no '/')", s.ScriptFile)
	}
	if len(s.Command) > 0 && strings.TrimSpace(s.Command[0]) == "" {
		c.add("command: the first element is the program to run and cannot be empty")
	}
	for i, f := range s.Files {
		if !fileNameRe.MatchString(f) {
			c.add("files[%d] %q: not a file name (letters, digits, '.', '_', '-'; up to 128; no '/')", i, f)
		}
	}
}
