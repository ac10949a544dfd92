package store_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hustack/hustack/store"
)

func TestParseScopes(t *testing.T) {
	valid := []struct {
		in   string
		want []store.Scope
	}{
		{"read:accounts", []store.Scope{"read:accounts"}},
		{"write:notes,read:accounts", []store.Scope{"read:accounts", "write:notes"}},
		{" read:usage , read:accounts ,, read:usage ", []store.Scope{"read:accounts", "read:usage"}},
	}
	for _, c := range valid {
		got, err := store.ParseScopes(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseScopes(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	all := make([]string, 0)
	for _, s := range store.AllScopes() {
		all = append(all, string(s))
	}
	got, err := store.ParseScopes(strings.Join(all, ","))
	if err != nil || len(got) != len(all) || !slices.IsSorted(got) {
		t.Errorf("ParseScopes(every scope) = %v, %v", got, err)
	}

	for _, in := range []string{"", " , ", "admin", "read:accounts,admin", "READ:ACCOUNTS", "read:widgets", "read:*", `{"$gt":""}`} {
		_, err := store.ParseScopes(in)
		var e *store.Error
		if !errors.As(err, &e) || e.Code != store.EBADREQUEST || e.Field != "scopes" {
			t.Errorf("ParseScopes(%q) = %v, want bad_request on scopes", in, err)
			continue
		}
		if !strings.Contains(e.Message, "read:accounts") {
			t.Errorf("ParseScopes(%q): message %q does not list the known scopes", in, e.Message)
		}
	}
	_, err = store.ParseScopes("read:accounts,write:everything")
	if err == nil || !strings.Contains(store.ErrorMessage(err), `"write:everything"`) {
		t.Errorf("the error does not name the unknown scope: %v", err)
	}
}

func TestAllScopes(t *testing.T) {
	scopes := store.AllScopes()
	if len(scopes) != 2*len(store.Resources)+4 {
		t.Errorf("%d scopes, want read and write per resource plus read:usage, admin:keys, read:webhooks and write:webhooks", len(scopes))
	}
	seen := map[store.Scope]bool{}
	for _, s := range scopes {
		if seen[s] || !store.ValidScope(s) {
			t.Errorf("scope %q duplicate or invalid", s)
		}
		seen[s] = true
	}
	for _, r := range store.Resources {
		if !seen[store.ReadScope(r.Name)] || !seen[store.WriteScope(r.Name)] {
			t.Errorf("resource %s lacks its scopes", r.Name)
		}
	}
	if !seen[store.ScopeUsage] || store.ScopeUsage != "read:usage" {
		t.Errorf("read:usage missing")
	}
	if !seen[store.ScopeAdminKeys] || store.ScopeAdminKeys != "admin:keys" {
		t.Errorf("admin:keys missing")
	}
	if store.ValidScope("write:usage") || store.ValidScope("") {
		t.Error("ValidScope accepts unknown scopes")
	}
}

func TestOperations(t *testing.T) {
	name := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	names := map[string]bool{}
	required := map[store.Scope]bool{}
	for _, op := range store.Operations {
		if names[op.Name] {
			t.Errorf("operation name %q is not unique", op.Name)
		}
		names[op.Name] = true
		if !name.MatchString(op.Name) {
			t.Errorf("operation name %q is not snake_case", op.Name)
		}
		if op.Summary == "" {
			t.Errorf("operation %s has no summary", op.Name)
		}
		if op.Scope != "" && !store.ValidScope(op.Scope) {
			t.Errorf("operation %s requires unknown scope %q", op.Name, op.Scope)
		}
		required[op.Scope] = true
		if got, ok := store.OperationByName(op.Name); !ok || got.Name != op.Name || got.Scope != op.Scope {
			t.Errorf("OperationByName(%q) = %+v, %v", op.Name, got, ok)
		}
	}
	if _, ok := store.OperationByName("drop_accounts"); ok {
		t.Error("OperationByName found an unknown operation")
	}

	for _, r := range store.Resources {
		want := []struct {
			name     string
			action   store.Action
			scope    store.Scope
			readOnly bool
		}{
			{"list_" + r.Name, store.ActionList, store.ReadScope(r.Name), true},
			{"get_" + r.Singular, store.ActionGet, store.ReadScope(r.Name), true},
			{"create_" + r.Singular, store.ActionCreate, store.WriteScope(r.Name), false},
			{"update_" + r.Singular, store.ActionUpdate, store.WriteScope(r.Name), false},
			{"delete_" + r.Singular, store.ActionDelete, store.WriteScope(r.Name), false},
			{"upsert_" + r.Singular, store.ActionUpsert, store.WriteScope(r.Name), false},
			{"batch_create_" + r.Name, store.ActionBatchCreate, store.WriteScope(r.Name), false},
			{"batch_upsert_" + r.Name, store.ActionBatchUpsert, store.WriteScope(r.Name), false},
		}
		for _, w := range want {
			op, ok := store.OperationByName(w.name)
			if !ok {
				t.Errorf("no operation %s", w.name)
				continue
			}
			if op.Action != w.action || op.Resource != r || op.Scope != w.scope || op.ReadOnly != w.readOnly {
				t.Errorf("operation %s = {action %s resource %v scope %s read-only %v}, want {%s %s %s %v}",
					w.name, op.Action, op.Resource, op.Scope, op.ReadOnly, w.action, r.Name, w.scope, w.readOnly)
			}
		}
	}
	for _, w := range []struct {
		name  string
		scope store.Scope
	}{{"whoami", ""}, {"get_usage", store.ScopeUsage}, {"list_usage_logs", store.ScopeUsage}} {
		op, ok := store.OperationByName(w.name)
		if !ok || op.Scope != w.scope || op.Resource != nil || !op.ReadOnly {
			t.Errorf("operation %s = %+v, %v", w.name, op, ok)
		}
	}
	for _, w := range []struct {
		name     string
		action   store.Action
		readOnly bool
	}{
		{"list_api_keys", store.ActionListKeys, true},
		{"get_api_key", store.ActionGetKey, true},
		{"create_api_key", store.ActionCreateKey, false},
		{"revoke_api_key", store.ActionRevokeKey, false},
		{"rotate_api_key", store.ActionRotateKey, false},
		{"get_key_policy", store.ActionGetPolicy, true},
		{"update_key_policy", store.ActionUpdatePolicy, false},
	} {
		op, ok := store.OperationByName(w.name)
		if !ok || op.Action != w.action || op.Scope != store.ScopeAdminKeys || op.Resource != nil || op.ReadOnly != w.readOnly {
			t.Errorf("operation %s = %+v, %v; want action %s, scope admin:keys, read-only %v", w.name, op, ok, w.action, w.readOnly)
		}
	}
	for _, w := range []struct {
		name   string
		action store.Action
		scope  store.Scope
	}{
		{"list_webhooks", store.ActionListWebhooks, store.ScopeReadWebhooks},
		{"get_webhook", store.ActionGetWebhook, store.ScopeReadWebhooks},
		{"create_webhook", store.ActionCreateWebhook, store.ScopeWriteWebhooks},
		{"update_webhook", store.ActionUpdateWebhook, store.ScopeWriteWebhooks},
		{"delete_webhook", store.ActionDeleteWebhook, store.ScopeWriteWebhooks},
		{"list_webhook_deliveries", store.ActionListDeliveries, store.ScopeReadWebhooks},
		{"replay_webhook_delivery", store.ActionReplayDelivery, store.ScopeWriteWebhooks},
		{"test_webhook", store.ActionTestWebhook, store.ScopeWriteWebhooks},
	} {
		op, ok := store.OperationByName(w.name)
		if !ok || op.Action != w.action || op.Scope != w.scope || op.Resource != nil || op.ReadOnly != (w.scope == store.ScopeReadWebhooks) {
			t.Errorf("operation %s = %+v, %v; want action %s, scope %s", w.name, op, ok, w.action, w.scope)
		}
	}
	// Every scope a key can carry guards some operation.
	for _, s := range store.AllScopes() {
		if !required[s] {
			t.Errorf("scope %s guards no operation", s)
		}
	}
	if len(store.Operations) != 8*len(store.Resources)+18 {
		t.Errorf("%d operations; a new one needs rows in the tests of every transport", len(store.Operations))
	}
}

func TestErrors(t *testing.T) {
	plain := errors.New("disk on fire")
	wrapped := fmt.Errorf("context: %w", store.Errorf(store.ENOTFOUND, "Account not found."))
	cases := []struct {
		err       error
		code, msg string
	}{
		{nil, "", ""},
		{plain, store.EINTERNAL, store.InternalMessage},
		{store.Errorf(store.ECONFLICT, "Key %q exists.", "k"), store.ECONFLICT, `Key "k" exists.`},
		{wrapped, store.ENOTFOUND, "Account not found."},
		{store.Errorf(store.EINTERNAL, "secret detail"), store.EINTERNAL, store.InternalMessage},
		{store.ErrMissingKey, store.EUNAUTHORIZED, "Missing API key."},
		{store.ErrInvalidKey, store.EUNAUTHORIZED, "Invalid API key."},
		{store.ErrRevokedKey, store.EREVOKED, "This API key has been revoked."},
		{store.ErrExpiredKey, store.EEXPIRED, "This API key has expired."},
		{store.ErrMissingScope, store.EFORBIDDEN, "API key does not have the required scope."},
		{store.ErrStale, store.ECONFLICT, store.ErrStale.Message},
		{fmt.Errorf("update: %w", store.ErrStale), store.ECONFLICT, store.ErrStale.Message},
		{store.Errorf(store.EIDEMPOTENCYREUSED, "used"), "idempotency_key_reused", "used"},
		{store.Errorf(store.EIDEMPOTENCYINUSE, "busy"), "idempotency_key_in_use", "busy"},
	}
	for _, c := range cases {
		if got := store.ErrorCode(c.err); got != c.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.code)
		}
		if got := store.ErrorMessage(c.err); got != c.msg {
			t.Errorf("ErrorMessage(%v) = %q, want %q", c.err, got, c.msg)
		}
	}
	fe := store.FieldError("limit", "must be at most %d.", 200)
	if fe.Code != store.EBADREQUEST || fe.Field != "limit" || fe.Message != "limit: must be at most 200." {
		t.Errorf("FieldError = %+v", fe)
	}
	if !strings.Contains(fe.Error(), "bad_request") {
		t.Errorf("Error() = %q", fe.Error())
	}
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := store.PrincipalFromContext(context.Background()); ok {
		t.Error("a bare context carries a principal")
	}
	p := store.Principal{WorkspaceID: "w", KeyID: "k", Scopes: []store.Scope{"read:accounts"}}
	got, ok := store.PrincipalFromContext(store.NewContextWithPrincipal(context.Background(), p))
	if !ok || got.KeyID != "k" || !got.Has("read:accounts") || got.Has("write:accounts") || !got.Authenticated() {
		t.Errorf("PrincipalFromContext = %+v, %v", got, ok)
	}
	if (store.Principal{WorkspaceID: "w"}).Authenticated() || (store.Principal{KeyID: "k"}).Authenticated() {
		t.Error("a principal without workspace or key counts as authenticated")
	}
}
