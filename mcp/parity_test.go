package mcp_test

import (
	"fmt"
	"reflect"
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
// operation and scope and vice versa, and the tool takes the same inputs:
// the route's path and query parameters and what its body holds (the
// resource's fields, or the records of a batch), plus idempotency_key for
// exactly the routes that take an Idempotency-Key. Types, enumerations,
// defaults and length limits of the parameters match too.
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
		params := slices.Concat(rt.PathArgs, rt.Query)
		for _, p := range params {
			want = append(want, p.Name)
		}
		switch rt.BodyKind {
		case api.BodyNone:
		case api.BodyRecord, api.BodyPatch, api.BodyUpsert:
			for _, f := range rt.Operation.Resource.Fields {
				if !slices.Contains(want, f.Name) { // upserts: external_id is in the path
					want = append(want, f.Name)
				}
			}
		case api.BodyBatch, api.BodyBatchUpsert:
			want = append(want, "records")
		case api.BodyKeyCreate:
			want = append(want, jsonFields(api.CreateKeyRequest{})...)
		case api.BodyKeyRotate:
			want = append(want, jsonFields(api.RotateKeyRequest{})...)
		case api.BodyKeyPolicy:
			want = append(want, jsonFields(store.KeyPolicy{})...)
		case api.BodyWebhookCreate:
			want = append(want, jsonFields(api.CreateWebhookRequest{})...)
		case api.BodyWebhookPatch:
			want = append(want, jsonFields(api.UpdateWebhookRequest{})...)
		default:
			t.Errorf("route %s %s: body kind %q unknown to this test", rt.Method, rt.Path, rt.BodyKind)
		}
		if rt.Idempotent {
			want = append(want, "idempotency_key")
		}
		got := tl.InputSchema.PropertyOrder
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("tool %s takes %v; route %s %s takes %v", tl.Name, got, rt.Method, rt.Path, want)
		}
		for _, p := range params {
			def, _ := tl.InputSchema.Properties[p.Name].(map[string]any)
			if def == nil {
				continue // reported above
			}
			if typ, format := paramSchemaType(p.Type); def["type"] != typ || (format != "" && def["format"] != format) {
				t.Errorf("tool %s: %s is %v (format %v), route's %s is %s", tl.Name, p.Name, def["type"], def["format"],
					rt.Path, p.Type)
			}
			if len(p.Enum) > 0 && p.Type != "boolean" && !slices.Equal(anyStrings(def["enum"]), p.Enum) {
				t.Errorf("tool %s: %s enum %v, route %v", tl.Name, p.Name, def["enum"], p.Enum)
			}
			if p.Default != "" && fmt.Sprint(def["default"]) != p.Default {
				t.Errorf("tool %s: %s default %v, route %q", tl.Name, p.Name, def["default"], p.Default)
			}
			if p.MaxLength > 0 && def["maxLength"] != p.MaxLength {
				t.Errorf("tool %s: %s maxLength %v, route %d", tl.Name, p.Name, def["maxLength"], p.MaxLength)
			}
		}
		if rt.Idempotent != (tl.Annotations.ReadOnlyHint != nil && !*tl.Annotations.ReadOnlyHint) {
			t.Errorf("tool %s: readOnlyHint %v, but route %s %s idempotent %v", tl.Name, *tl.Annotations.ReadOnlyHint,
				rt.Method, rt.Path, rt.Idempotent)
		}
	}
	for _, rt := range routes {
		if _, ok := hustackmcp.ToolScope(rt.Operation.Name); !ok {
			t.Errorf("route %s %s (%s) has no tool", rt.Method, rt.Path, rt.Operation.Name)
		}
	}
}

// jsonFields returns the JSON names of a body type's fields.
func jsonFields(v any) []string {
	var out []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// paramSchemaType is the JSON Schema type and format of a REST parameter type.
func paramSchemaType(typ string) (string, string) {
	switch typ {
	case "id":
		return "string", "uuid"
	case "date-time":
		return "string", "date-time"
	}
	return typ, ""
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
