package spiderproto

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	var a Answer
	in := `{"items":[{"s":"x","n":7,"f":12.5,"b":true,"z":null,"o":{"k":1},"l":["a",2,null,{"c":1},[1]]}],"links":["/p"]}`
	if err := json.Unmarshal([]byte(in), &a); err != nil {
		t.Fatal(err)
	}
	if err := Normalize(&a); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"s": "x", "n": "7", "f": "12.5", "b": "true", "o": `{"k":1}`,
		"l": []string{"a", "2", `{"c":1}`, "[1]"}}
	if !reflect.DeepEqual(a.Items[0], want) {
		t.Errorf("Normalize = %#v\nwant %#v", a.Items[0], want)
	}
}

func TestNormalizeNamesTheField(t *testing.T) {
	a := Answer{Items: []map[string]any{{"ok": "x"}, {"bad": func() {}}}}
	err := Normalize(&a)
	if err == nil || !strings.Contains(err.Error(), "items[1].bad") {
		t.Errorf("Normalize of a function = %v, want an error naming items[1].bad", err)
	}
}

func TestHeaders(t *testing.T) {
	h := http.Header{"Content-Type": {"text/html"}, "Set-Cookie": {"a=1", "b=2"}}
	got := Headers(h)
	if got["content-type"] != "text/html" || got["set-cookie"] != "a=1, b=2" {
		t.Errorf("Headers = %v", got)
	}
}
