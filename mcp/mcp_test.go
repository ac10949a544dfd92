package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/hustack/hustack/api"
	hustackmcp "github.com/hustack/hustack/mcp"
	"github.com/hustack/hustack/store"
)

// TestClients runs the same scenario with mcp-go's client and the official
// go-sdk client, over Streamable HTTP and over stdio, speaking protocol
// 2026-07-28 and 2025-11-25.
func TestClients(t *testing.T) {
	e := newEnv(t)
	for _, c := range connectors {
		for _, version := range []string{protoModern, protoLegacy} {
			t.Run(c.name+"/"+version, func(t *testing.T) { scenario(t, e, c, version) })
		}
	}
}

type record map[string]any

type page struct {
	Data       []record `json:"data"`
	Pagination struct {
		Limit   int  `json:"limit"`
		Offset  int  `json:"offset"`
		HasMore bool `json:"has_more"`
	} `json:"pagination"`
}

func (p page) ids() []string {
	var out []string
	for _, r := range p.Data {
		out = append(out, r["id"].(string))
	}
	return out
}

func scenario(t *testing.T, e *env, c connector, version string) {
	ctx := t.Context()
	allTools := sorted(toolNames(listedAll()))
	tag := c.name + " " + version

	// Workspace B has an account that workspace A must never see.
	other := mustConnect(t, c, e, e.keys[keyOther], version)
	var foreign record
	call(t, other, "create_account", map[string]any{"name": "Foreign " + tag}, &foreign)
	foreignID := foreign["id"].(string)
	_ = other.Close()

	// A key with every scope sees every tool.
	s := mustConnect(t, c, e, e.keys[keyFull], version)
	if got := s.ProtocolVersion(); got != version {
		t.Errorf("negotiated protocol %q, want %q", got, version)
	}
	tools, err := s.ListTools(ctx)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if got := sorted(toolNames(tools)); !slices.Equal(got, allTools) {
		t.Errorf("tools/list with every scope:\n got %v\nwant %v", got, allTools)
	}
	for _, tl := range tools {
		op, _ := store.OperationByName(tl.Name)
		for _, hint := range []string{"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"} {
			if _, ok := tl.Annotations[hint].(bool); !ok {
				t.Errorf("%s: annotation %s not set: %v", tl.Name, hint, tl.Annotations)
			}
		}
		// Updates, upserts and deletes overwrite or remove data; repeating
		// one changes nothing more. Creates only add.
		// Revoking a key ends it for good and a policy update replaces the
		// policy; repeating either changes nothing more. A rotation cuts the
		// old key's life short and makes a new key on every call. The
		// webhook tools that send data to a URL reach the open world.
		changes := slices.Contains([]store.Action{store.ActionUpdate, store.ActionUpsert, store.ActionBatchUpsert,
			store.ActionDelete, store.ActionRevokeKey, store.ActionUpdatePolicy, store.ActionUpdateWebhook,
			store.ActionDeleteWebhook}, op.Action)
		destructive := changes || op.Action == store.ActionRotateKey
		openWorld := slices.Contains([]store.Action{store.ActionCreateWebhook, store.ActionUpdateWebhook,
			store.ActionReplayDelivery, store.ActionTestWebhook}, op.Action)
		if tl.Annotations["readOnlyHint"] != op.ReadOnly || tl.Annotations["destructiveHint"] != destructive ||
			tl.Annotations["idempotentHint"] != (op.ReadOnly || changes) || tl.Annotations["openWorldHint"] != openWorld {
			t.Errorf("%s: annotations %v", tl.Name, tl.Annotations)
		}
		if !tl.OutputSchema {
			t.Errorf("%s: no output schema", tl.Name)
		}
	}

	var me struct {
		Workspace struct{ ID, Name string }
		Key       struct {
			Name      string
			Scopes    []string
			ExpiresAt *string `json:"expires_at"`
		}
	}
	call(t, s, "whoami", nil, &me)
	if me.Workspace.ID != e.wsA.ID || me.Workspace.Name != e.wsA.Name || me.Key.Name != keyFull ||
		len(me.Key.Scopes) != len(store.AllScopes()) || me.Key.ExpiresAt != nil {
		t.Errorf("whoami = %+v", me)
	}

	// Create, then get, then list.
	var acc record
	call(t, s, "create_account", map[string]any{"name": "  Acme " + tag + " ", "industry": "Tools", "email": "sales@acme.example"}, &acc)
	id, _ := acc["id"].(string)
	if !store.ValidID(id) || acc["name"] != "Acme "+tag || acc["industry"] != "Tools" || acc["country"] != nil ||
		acc["created_via"] != "api" || acc["api_key_id"] == "" {
		t.Fatalf("create_account = %v", acc)
	}
	var got record
	call(t, s, "get_account", map[string]any{"id": id}, &got)
	if got["id"] != id || got["name"] != acc["name"] || got["created_at"] != acc["created_at"] {
		t.Errorf("get_account = %v, want %v", got, acc)
	}
	var second record
	call(t, s, "create_account", map[string]any{"name": "Second " + tag}, &second)
	var p page
	call(t, s, "list_accounts", map[string]any{"limit": 200}, &p)
	if ids := p.ids(); !slices.Contains(ids, id) || !slices.Contains(ids, second["id"].(string)) || slices.Contains(ids, foreignID) {
		t.Errorf("list_accounts: %v; want %s and %s, not %s", ids, id, second["id"], foreignID)
	}
	if p.Pagination.Limit != 200 || p.Pagination.Offset != 0 || p.Pagination.HasMore {
		t.Errorf("pagination = %+v", p.Pagination)
	}
	call(t, s, "list_accounts", map[string]any{"limit": 1}, &p)
	if len(p.Data) != 1 || p.Data[0]["id"] != second["id"] || !p.Pagination.HasMore {
		t.Errorf("list_accounts limit 1: newest first with has_more: got %v %+v", p.ids(), p.Pagination)
	}
	call(t, s, "list_accounts", map[string]any{"limit": 1, "offset": 1}, &p)
	if len(p.Data) != 1 || p.Data[0]["id"] != id || p.Pagination.Offset != 1 {
		t.Errorf("list_accounts offset 1: got %v %+v", p.ids(), p.Pagination)
	}
	call(t, s, "list_accounts", map[string]any{"limit": 5000}, &p) // clamped, as over REST
	if p.Pagination.Limit != store.MaxLimit {
		t.Errorf("limit 5000 gave page limit %d, want %d", p.Pagination.Limit, store.MaxLimit)
	}

	// Other resources, with references and normalised values.
	var contact, deal, act, note record
	call(t, s, "create_contact", map[string]any{"first_name": "Ann", "account_id": id}, &contact)
	call(t, s, "create_deal", map[string]any{"name": "Big", "value": 1200.5, "currency": "eur", "account_id": id}, &deal)
	if deal["value"] != 1200.5 || deal["currency"] != "EUR" || deal["account_id"] != id {
		t.Errorf("create_deal = %v", deal)
	}
	call(t, s, "create_activity", map[string]any{"type": "meeting", "title": "Kick-off", "due_date": "2030-01-31",
		"related_contact_id": contact["id"], "related_opportunity_id": deal["id"]}, &act)
	if act["type"] != "Meeting" || act["due_date"] != "2030-01-31" {
		t.Errorf("create_activity = %v", act)
	}
	call(t, s, "create_note", map[string]any{"content": "Met Ann.", "related_account_id": id}, &note)
	call(t, s, "get_note", map[string]any{"id": note["id"]}, nil)
	call(t, s, "list_activities", nil, &p)
	if !slices.Contains(p.ids(), act["id"].(string)) || p.Pagination.Limit != store.DefaultLimit {
		t.Errorf("list_activities: %v %+v", p.ids(), p.Pagination)
	}
	var usage struct {
		Data    []struct{ Group string }
		GroupBy string `json:"group_by"`
	}
	call(t, s, "get_usage", map[string]any{"group_by": "route"}, &usage)
	if usage.GroupBy != "route" {
		t.Errorf("get_usage group_by = %q", usage.GroupBy)
	}
	call(t, s, "list_usage_logs", map[string]any{"limit": 5, "status": 200, "from": "2020-01-01T00:00:00Z"}, nil)

	// Bad arguments: isError results with the code and message REST gives
	// for the same input.
	for _, tc := range []struct {
		tool    string
		args    map[string]any
		method  string
		path    string // REST request with the same input
		body    string
		code    string
		message string // substring, when there is no REST twin
	}{
		{tool: "create_activity", args: map[string]any{"type": "Lunch", "title": "x"},
			method: "POST", path: "/activities", body: `{"type":"Lunch","title":"x"}`, code: store.EBADREQUEST},
		{tool: "create_account", args: map[string]any{},
			method: "POST", path: "/accounts", body: `{}`, code: store.EBADREQUEST},
		{tool: "create_account", args: map[string]any{"name": "x", "nmae": "y"},
			method: "POST", path: "/accounts", body: `{"name":"x","nmae":"y"}`, code: store.EBADREQUEST},
		{tool: "create_account", args: map[string]any{"name": strings.Repeat("n", 256)},
			method: "POST", path: "/accounts", body: `{"name":"` + strings.Repeat("n", 256) + `"}`, code: store.EBADREQUEST},
		{tool: "create_deal", args: map[string]any{"name": "x", "value": -1},
			method: "POST", path: "/deals", body: `{"name":"x","value":-1}`, code: store.EBADREQUEST},
		{tool: "create_contact", args: map[string]any{"first_name": "Eve", "account_id": foreignID},
			method: "POST", path: "/contacts", body: `{"first_name":"Eve","account_id":"` + foreignID + `"}`, code: store.EBADREQUEST},
		{tool: "list_accounts", args: map[string]any{"limit": "lots"},
			method: "GET", path: "/accounts?limit=lots", code: store.EBADREQUEST},
		{tool: "list_accounts", args: map[string]any{"limit": 0},
			method: "GET", path: "/accounts?limit=0", code: store.EBADREQUEST},
		{tool: "list_accounts", args: map[string]any{"offset": -1},
			method: "GET", path: "/accounts?offset=-1", code: store.EBADREQUEST},
		{tool: "list_usage_logs", args: map[string]any{"from": "yesterday"},
			method: "GET", path: "/usage/logs?from=yesterday", code: store.EBADREQUEST},
		{tool: "get_usage", args: map[string]any{"group_by": "week"},
			method: "GET", path: "/usage?group_by=week", code: store.EBADREQUEST},
		{tool: "get_account", args: map[string]any{"id": foreignID},
			method: "GET", path: "/accounts/" + foreignID, code: store.ENOTFOUND},
		{tool: "get_account", args: map[string]any{"id": "not-an-id"},
			method: "GET", path: "/accounts/not-an-id", code: store.ENOTFOUND},
		{tool: "list_accounts", args: map[string]any{"sort": "name"},
			method: "GET", path: "/accounts?sort=name", code: store.EBADREQUEST},
		{tool: "list_accounts", args: map[string]any{"cursor": "bogus"},
			method: "GET", path: "/accounts?cursor=bogus", code: store.EBADREQUEST},
		{tool: "list_accounts", args: map[string]any{"created_after": "yesterday"},
			method: "GET", path: "/accounts?created_after=yesterday", code: store.EBADREQUEST},
		{tool: "list_accounts", args: map[string]any{"created_after": "2030-01-01T00:00:00Z", "created_before": "2020-01-01T00:00:00Z"},
			method: "GET", path: "/accounts?created_after=2030-01-01T00:00:00Z&created_before=2020-01-01T00:00:00Z", code: store.EBADREQUEST},
		{tool: "list_accounts", args: map[string]any{"include_deleted": "maybe"},
			method: "GET", path: "/accounts?include_deleted=maybe", code: store.EBADREQUEST},
		{tool: "list_accounts", args: map[string]any{"q": strings.Repeat("q", 201)},
			method: "GET", path: "/accounts?q=" + strings.Repeat("q", 201), code: store.EBADREQUEST},
		{tool: "list_contacts", args: map[string]any{"account_id": "nope"},
			method: "GET", path: "/contacts?account_id=nope", code: store.EBADREQUEST},
		{tool: "update_account", args: map[string]any{"id": foreignID, "name": "Taken over"},
			method: "PATCH", path: "/accounts/" + foreignID, body: `{"name":"Taken over"}`, code: store.ENOTFOUND},
		{tool: "update_account", args: map[string]any{"id": id, "name": nil},
			method: "PATCH", path: "/accounts/" + id, body: `{"name":null}`, code: store.EBADREQUEST},
		{tool: "update_account", args: map[string]any{"id": id, "nmae": "x"},
			method: "PATCH", path: "/accounts/" + id, body: `{"nmae":"x"}`, code: store.EBADREQUEST},
		{tool: "update_deal", args: map[string]any{"id": deal["id"], "value": -5},
			method: "PATCH", path: "/deals/" + deal["id"].(string), body: `{"value":-5}`, code: store.EBADREQUEST},
		{tool: "delete_account", args: map[string]any{"id": foreignID},
			method: "DELETE", path: "/accounts/" + foreignID, code: store.ENOTFOUND},
		{tool: "delete_account", args: map[string]any{"id": id}, // contacts and deals refer to it
			method: "DELETE", path: "/accounts/" + id, code: store.ECONFLICT},
		{tool: "upsert_account", args: map[string]any{"external_id": "no-name " + tag},
			method: "PUT", path: "/accounts/by-external-id/no-name%20" + url.PathEscape(tag), body: `{}`, code: store.EBADREQUEST},
		{tool: "upsert_account", args: map[string]any{"external_id": "ext", "name": "x", "email": "not an email"},
			method: "PUT", path: "/accounts/by-external-id/ext", body: `{"name":"x","email":"not an email"}`, code: store.EBADREQUEST},
		{tool: "batch_create_notes", args: map[string]any{"records": []any{}},
			method: "POST", path: "/notes/batch", body: `{"records":[]}`, code: store.EBADREQUEST},
		{tool: "batch_create_notes", args: map[string]any{"records": "all of them"},
			method: "POST", path: "/notes/batch", body: `{"records":"all of them"}`, code: store.EBADREQUEST},
		{tool: "update_account", args: map[string]any{"id": id, "name": "x", "idempotency_key": ""}, code: store.EBADREQUEST,
			message: `idempotency_key: ` + store.IdempotencyKeyRule + ` Got "".`},
		{tool: "update_account", args: map[string]any{"name": "x"}, code: store.EBADREQUEST, message: "id: is required."},
		{tool: "upsert_account", args: map[string]any{"name": "x"}, code: store.EBADREQUEST, message: "external_id: is required."},
		{tool: "batch_upsert_leads", args: map[string]any{"records": []any{map[string]any{"name": "x"}}, "limit": 3},
			code: store.EBADREQUEST, message: `Unknown argument(s) for batch_upsert_leads: "limit". Accepted arguments: records, idempotency_key.`},
		{tool: "list_accounts", args: map[string]any{"limt": 5}, code: store.EBADREQUEST,
			message: `Unknown argument(s) for list_accounts: "limt". Accepted arguments: limit, offset, cursor, sort, ` +
				`created_after, created_before, updated_after, updated_before, industry, email, country, external_id, q, include_deleted.`},
		{tool: "get_account", args: map[string]any{}, code: store.EBADREQUEST, message: "id: is required."},
		{tool: "get_account", args: map[string]any{"id": 12}, code: store.EBADREQUEST, message: "id: must be a string."},
		{tool: "list_accounts", args: map[string]any{"limit": 1.5}, code: store.EBADREQUEST,
			message: "limit: must be an integer between 1 and 200, got 1.5."},
	} {
		code, msg := callError(t, s, tc.tool, tc.args)
		want := tc.message
		if tc.path != "" {
			var restCode string
			restCode, want = restError(t, e, e.keys[keyFull], tc.method, tc.path, tc.body)
			if restCode != tc.code {
				t.Errorf("REST %s %s answered %s, want %s", tc.method, tc.path, restCode, tc.code)
			}
		}
		if code != tc.code || msg != want {
			t.Errorf("%s(%v) = %s %q; want %s %q", tc.tool, tc.args, code, msg, tc.code, want)
		}
	}
	_ = s.Close()

	// The other workspace's key: the account does not exist there.
	other = mustConnect(t, c, e, e.keys[keyOther], version)
	code, msg := callError(t, other, "get_account", map[string]any{"id": id})
	if code != store.ENOTFOUND || msg != "Account not found." {
		t.Errorf("cross-workspace get_account = %s %q", code, msg)
	}
	call(t, other, "list_accounts", map[string]any{"limit": 200}, &p)
	if slices.Contains(p.ids(), id) || !slices.Contains(p.ids(), foreignID) {
		t.Errorf("workspace B lists %v", p.ids())
	}
	call(t, other, "whoami", nil, &me)
	if me.Workspace.ID != e.wsB.ID {
		t.Errorf("whoami for workspace B = %+v", me)
	}
	_ = other.Close()

	// A read-only key: only its tools are listed, any other call is refused
	// and changes nothing.
	ra := mustConnect(t, c, e, e.keys[keyReadAccounts], version)
	tools, err = ra.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(toolNames(tools)), []string{"get_account", "list_accounts", "whoami"}; !slices.Equal(got, want) {
		t.Errorf("tools/list with read:accounts = %v, want %v", got, want)
	}
	for _, name := range []string{"create_account", "list_contacts", "get_usage", "no_such_tool"} {
		if res, err := ra.CallTool(ctx, name, map[string]any{"name": "Forbidden " + tag}); err == nil {
			t.Errorf("%s with read:accounts: want the call refused, got %+v", name, res)
		}
	}
	call(t, ra, "list_accounts", map[string]any{"limit": 200}, &p)
	for _, r := range p.Data {
		if r["name"] == "Forbidden "+tag {
			t.Errorf("a refused create_account created %v", r)
		}
	}
	call(t, ra, "get_account", map[string]any{"id": id}, nil)
	_ = ra.Close()

	notes := mustConnect(t, c, e, e.keys[keyNotes], version)
	tools, err = notes.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(toolNames(tools)), []string{"batch_create_notes", "batch_upsert_notes", "create_note", "delete_note",
		"get_note", "list_notes", "update_note", "upsert_note", "whoami"}; !slices.Equal(got, want) {
		t.Errorf("tools/list with notes scopes = %v, want %v", got, want)
	}
	if _, err := notes.CallTool(ctx, "get_account", map[string]any{"id": id}); err == nil {
		t.Errorf("get_account with notes scopes was not refused")
	}
	call(t, notes, "create_note", map[string]any{"content": "From the notes key."}, nil)
}

// restError sends a REST request and returns the error code and message.
func restError(t *testing.T, e *env, key, method, path, body string) (code, message string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.restURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b api.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || b.Error == "" {
		t.Fatalf("REST %s %s: status %d, no error body (%v)", method, path, resp.StatusCode, err)
	}
	return b.Error, b.Message
}

func listedAll() []toolInfo {
	var out []toolInfo
	for _, tl := range hustackmcp.Tools() {
		out = append(out, toolInfo{Name: tl.Name})
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestHTTPAuthentication: /mcp is behind the API's Bearer authentication.
func TestHTTPAuthentication(t *testing.T) {
	e := newEnv(t)
	revoked := e.newKey(t, e.wsA.ID, "revoked", store.ReadScope("accounts"))
	k, err := e.svc.FindAPIKeys(t.Context(), e.wsA.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range k {
		if key.Name == "revoked" {
			if _, err := e.svc.RevokeAPIKey(t.Context(), key.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`
	for _, tc := range []struct {
		name   string
		header string
		status int
		code   string
	}{
		{"no key", "", http.StatusUnauthorized, store.EUNAUTHORIZED},
		{"unknown key", "Bearer hs_live_0000000000000000000000000000000000000000", http.StatusUnauthorized, store.EUNAUTHORIZED},
		{"not bearer", "Basic " + e.keys[keyFull], http.StatusUnauthorized, store.EUNAUTHORIZED},
		{"revoked key", "Bearer " + revoked, http.StatusGone, store.EREVOKED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.mcpURL(), strings.NewReader(initialize))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b api.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&b)
			if resp.StatusCode != tc.status || b.Error != tc.code {
				t.Errorf("status %d %q, want %d %q", resp.StatusCode, b.Error, tc.status, tc.code)
			}
			if tc.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q, want Bearer", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	for _, c := range connectors[:2] {
		t.Run(c.name+" without a key", func(t *testing.T) {
			if s, err := c.connect(t, e, "", ""); err == nil {
				_ = s.Close()
				t.Errorf("connected without a key")
			}
		})
	}
	t.Run("GET stream", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.mcpURL(), nil)
		req.Header.Set("Authorization", "Bearer "+e.keys[keyFull])
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /mcp = %d, want 405 (no server-initiated stream)", resp.StatusCode)
		}
	})
}

// TestHTTPUsageEvents: every MCP request is a usage event with transport mcp.
func TestHTTPUsageEvents(t *testing.T) {
	e := newEnv(t)
	s := mustConnect(t, connectors[0], e, e.keys[keyFull], protoModern)
	var me struct{ Key struct{ ID string } }
	call(t, s, "whoami", nil, &me)
	call(t, s, "list_accounts", nil, nil)
	var mcpEvents int
	for _, ev := range e.usage.all() {
		if ev.Transport != store.TransportMCP {
			continue
		}
		mcpEvents++
		if ev.Route != api.MCPPath || ev.KeyID != me.Key.ID || ev.WorkspaceID != e.wsA.ID || ev.RequestID == "" {
			t.Errorf("usage event %+v", ev)
		}
	}
	// At least the two tool calls (connecting adds its own requests).
	if mcpEvents < 2 {
		t.Errorf("%d usage events with transport mcp, want >= 2", mcpEvents)
	}
}

// TestInternalErrorsMasked: a failing backend answers the generic message,
// logged once with the request id, never the driver's text.
func TestInternalErrorsMasked(t *testing.T) {
	for _, c := range []connector{connectors[0], connectors[2]} {
		t.Run(c.name, func(t *testing.T) {
			// Keys stay cached for the whole test, so requests still
			// authenticate once the database is gone.
			e := newEnv(t, store.WithKeyCacheTTL(1<<62))
			s := mustConnect(t, c, e, e.keys[keyFull], protoModern)
			call(t, s, "list_accounts", nil, nil)
			if err := e.svc.Close(); err != nil {
				t.Fatal(err)
			}
			res, err := s.CallTool(t.Context(), "list_accounts", nil)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Error, Message string
				RequestID      string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(res.Text), &body); err != nil {
				t.Fatalf("text %q: %v", res.Text, err)
			}
			if !res.IsError || body.Error != store.EINTERNAL || body.Message != store.InternalMessage || res.Structured != nil {
				t.Errorf("result = %+v", res)
			}
			// Logged once, with the request id the client was given: over
			// HTTP the API's, over stdio the one the REST API gave the
			// failed request.
			var failed []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
				var entry map[string]any
				if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == "mcp tool call failed" {
					failed = append(failed, entry)
				}
			}
			if len(failed) != 1 {
				t.Fatalf("%d log entries for the failed call, want 1:\n%s", len(failed), e.logs.String())
			}
			if body.RequestID == "" || failed[0]["request_id"] != body.RequestID || failed[0]["tool"] != "list_accounts" {
				t.Errorf("result request id %q, log entry %v", body.RequestID, failed[0])
			}
			if strings.Contains(strings.ToLower(res.Text), "sql") || strings.Contains(res.Text, "closed") {
				t.Errorf("internal detail reached the client: %s", res.Text)
			}
		})
	}
}

// TestOperationChecksScopeAgain: even when a caller's scopes would let a
// tool through the filter, the operation itself refuses a principal without
// the scope.
func TestOperationChecksScopeAgain(t *testing.T) {
	e := newEnv(t)
	p, err := e.svc.Authenticate(t.Context(), e.keys[keyReadAccounts])
	if err != nil {
		t.Fatal(err)
	}
	// The filter believes every scope; the operations are the key's.
	srv := hustackmcp.NewServer(func(context.Context) hustackmcp.Caller {
		return hustackmcp.Caller{Ops: e.svc.Scoped(p), Scopes: store.AllScopes()}
	}, hustackmcp.Config{Logger: e.logger})
	s := inProcessSession(t, srv)
	code, msg := callError(t, s, "create_account", map[string]any{"name": "Sneaky"})
	if code != store.EFORBIDDEN || msg != store.ErrMissingScope.Message {
		t.Errorf("create_account = %s %q, want forbidden", code, msg)
	}
	code, _ = callError(t, s, "list_notes", nil)
	if code != store.EFORBIDDEN {
		t.Errorf("list_notes = %s, want forbidden", code)
	}
	// No principal at all: only whoami is listed, and it is unauthorized.
	anon := inProcessSession(t, hustackmcp.NewServer(hustackmcp.InProcess(e.svc), hustackmcp.Config{Logger: e.logger}))
	tools, err := anon.ListTools(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(tools); !slices.Equal(got, []string{"whoami"}) {
		t.Errorf("tools without a principal = %v", got)
	}
	if code, _ := callError(t, anon, "whoami", nil); code != store.EUNAUTHORIZED {
		t.Errorf("whoami without a principal = %s", code)
	}
}

// TestStdioRefusesKey: the stdio server checks the key before serving.
func TestStdioRefusesKey(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, key, url, want string
	}{
		{"unknown key", "hs_live_0000000000000000000000000000000000000000", e.restURL(), "unauthorized: Invalid API key."},
		{"no key", "", e.restURL(), "API key is required"},
		{"no url", e.keys[keyFull], "", "base URL is required"},
		{"bad url", e.keys[keyFull], "ftp://example", "must be an http or https URL"},
		{"not hustack", e.keys[keyFull], e.url + "/nowhere", "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := hustackmcp.ServeStdio(t.Context(), hustackmcp.StdioConfig{URL: tc.url, Key: tc.key,
				Config: hustackmcp.Config{Logger: e.logger}}, strings.NewReader(""), &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ServeStdio = %v, want an error containing %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %q before refusing", out.String())
			}
		})
	}
}
