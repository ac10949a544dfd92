package mcp_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hustackmcp "github.com/hustack/hustack/mcp"
)

// snapDir holds one JSON file per tool: the definition clients see in
// tools/list. Any schema, description or annotation change shows up there in
// review. Regenerate with UPDATE_TOOLSNAPS=1 go test ./mcp -run TestToolSnapshots.
const snapDir = "testdata/toolsnaps"

func TestToolSnapshots(t *testing.T) {
	update := os.Getenv("UPDATE_TOOLSNAPS") == "1"
	want := map[string]bool{}
	for _, tl := range hustackmcp.Tools() {
		name := tl.Name + ".snap"
		want[name] = true
		got, err := json.MarshalIndent(tl, "", "  ")
		if err != nil {
			t.Fatalf("%s: %v", tl.Name, err)
		}
		got = append(got, '\n')
		path := filepath.Join(snapDir, name)
		if update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		old, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: no snapshot (run with UPDATE_TOOLSNAPS=1 to create it): %v", tl.Name, err)
			continue
		}
		if !bytes.Equal(old, got) {
			t.Errorf("%s: tool definition differs from %s (run with UPDATE_TOOLSNAPS=1 if the change is intended):\n%s",
				tl.Name, path, diffLines(string(old), string(got)))
		}
	}
	entries, err := os.ReadDir(snapDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if want[en.Name()] {
			continue
		}
		if update {
			if err := os.Remove(filepath.Join(snapDir, en.Name())); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s: snapshot of a tool that no longer exists (run with UPDATE_TOOLSNAPS=1 to remove it)", en.Name())
	}
}

// diffLines shows the lines of a that differ from b, a minimal diff for
// review.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out.WriteString("- " + x + "\n+ " + y + "\n")
		}
	}
	return out.String()
}
