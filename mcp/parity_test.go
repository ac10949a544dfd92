package mcp_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/hustack/hustack/api"
	hustackmcp "github.com/hustack/hustack/mcp"
	"github.com/hustack/hustack/store"
)

// TestParityWithOperations: one tool per operation of the table, with the
// operation's name and scope, and no other tool.
func TestParityWithOperations(t *testing.T) {
	tools := hustackmcp.Tools()
	if len(tools) != len(store.Operations) {
		t.Errorf("%d tools for %d operations", len(tools), len(store.Operations))
	}
	for _, op := range store.Operations {
		scope, ok := hustackmcp.ToolScope(op.Name)
		if !ok {
			t.Errorf("operation %s has no tool", op.Name)
			continue
		}
		if scope != op.Scope {
			t.Errorf("tool %s requires %q, operation %q", op.Name, scope, op.Scope)
		}
	}
	for _, tl := range tools {
		op, ok := store.OperationByName(tl.Name)
		if !ok {
			t.Errorf("tool %s has no operation", tl.Name)
			continue
		}
		if ro := tl.Annotations.ReadOnlyHint; ro == nil || *ro != op.ReadOnly {
			t.Errorf("tool %s: readOnlyHint %v, operation ReadOnly %v", tl.Name, ro, op.ReadOnly)
		}
	}
}

// TestParityWithRoutes: every REST route has a tool with the same
// operation and scope and vice versa, and the tool takes the same inputs: the
// route's query parameters, its path id, or the resource's fields for a body.
func TestParityWithRoutes(t *testing.T) {
	routes := api.Routes()
	byName := map[string]api.Route{}
	for _, rt := range routes {
		byName[rt.Operation.Name] = rt
	}
	for _, tl := range hustackmcp.Tools() {
		rt, ok := byName[tl.Name]
		if !ok {
			t.Errorf("tool %s has no REST route", tl.Name)
			continue
		}
		scope, _ := hustackmcp.ToolScope(tl.Name)
		if scope != rt.Operation.Scope {
			t.Errorf("tool %s requires %q, route %s %s requires %q", tl.Name, scope, rt.Method, rt.Path, rt.Operation.Scope)
		}
		var want []string
		for _, q := range rt.Query {
			want = append(want, q.Name)
		}
		if strings.Contains(rt.Path, "/:id") {
			want = append(want, "id")
		}
		if rt.Body {
			for _, f := range rt.Operation.Resource.Fields {
				want = append(want, f.Name)
			}
		}
		got := tl.InputSchema.PropertyOrder
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("tool %s takes %v; route %s %s takes %v", tl.Name, got, rt.Method, rt.Path, want)
		}
		// Enumerations and defaults of query parameters match too.
		for _, q := range rt.Query {
			def, _ := tl.InputSchema.Properties[q.Name].(map[string]any)
			if len(q.Enum) > 0 && !slices.Equal(anyStrings(def["enum"]), q.Enum) {
				t.Errorf("tool %s: %s enum %v, route %v", tl.Name, q.Name, def["enum"], q.Enum)
			}
		}
	}
	for _, rt := range routes {
		if _, ok := hustackmcp.ToolScope(rt.Operation.Name); !ok {
			t.Errorf("route %s %s (%s) has no tool", rt.Method, rt.Path, rt.Operation.Name)
		}
	}
}

func anyStrings(v any) []string {
	switch s := v.(type) {
	case []string:
		return s
	case []any:
		var out []string
		for _, x := range s {
			str, _ := x.(string)
			out = append(out, str)
		}
		return out
	}
	return nil
}
