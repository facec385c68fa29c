package mesh

import (
	"runtime/debug"
	"testing"
)

// A development build names its commit; a release (set at link time)
// stays as it is.
func TestDevVersion(t *testing.T) {
	stamp := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "9e50ec48f28ba37df33f8a767cd04cdd29fb9a6d"}}
	for _, c := range []struct {
		v        string
		settings []debug.BuildSetting
		want     string
	}{
		{"0.1.0-dev", stamp, "0.1.0-dev+9e50ec48f28b"},
		{"0.1.0-dev", append(stamp, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "0.1.0-dev+9e50ec48f28b.dirty"},
		{"0.1.0-dev", nil, "0.1.0-dev"},
		{"1.4.0", stamp, "1.4.0"},
	} {
		if got := devVersion(c.v, c.settings); got != c.want {
			t.Errorf("devVersion(%q) = %q, want %q", c.v, got, c.want)
		}
	}
}
