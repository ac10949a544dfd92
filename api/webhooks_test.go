package api_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/dnstest"
)

// webhookJSON is a decoded subscription of the API.
type webhookJSON struct {
	ID             string            `json:"id"`
	WorkspaceID    string            `json:"workspace_id"`
	URL            string            `json:"url"`
	Events         []string          `json:"events"`
	Description    string            `json:"description"`
	Enabled        bool              `json:"enabled"`
	Status         string            `json:"status"`
	DisabledReason string            `json:"disabled_reason"`
	FailingSince   *time.Time        `json:"failing_since"`
	ExpiresAt      *time.Time        `json:"expires_at"`
	Scopes         []string          `json:"scopes"`
	Filter         map[string]string `json:"filter"`
	APIKeyID       string            `json:"api_key_id"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	Secret         *string           `json:"secret"`
}

// webhookFields are exactly the members of a subscription in the API.
var webhookFields = []string{"api_key_id", "created_at", "description", "disabled_reason", "enabled", "events", "expires_at",
	"failing_since", "filter", "id", "scopes", "status", "updated_at", "url", "workspace_id"}

// deliveryJSON is a decoded delivery of the API.
type deliveryJSON struct {
	ID               string     `json:"id"`
	WorkspaceID      string     `json:"workspace_id"`
	WebhookID        string     `json:"webhook_id"`
	EventID          string     `json:"event_id"`
	EventType        string     `json:"event_type"`
	Status           string     `json:"status"`
	Attempts         int        `json:"attempts"`
	History          []any      `json:"history"`
	NextAttemptAt    *time.Time `json:"next_attempt_at"`
	ReplayOf         *string    `json:"replay_of"`
	LastResponseCode *int       `json:"last_response_code"`
	LastLatencyMS    *int64     `json:"last_latency_ms"`
}

func decodeWebhook(t *testing.T, b []byte) webhookJSON {
	t.Helper()
	var w webhookJSON
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatalf("decode webhook: %v: %s", err, clip(b))
	}
	return w
}

func decodeDelivery(t *testing.T, b []byte) deliveryJSON {
	t.Helper()
	var d deliveryJSON
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decode delivery: %v: %s", err, clip(b))
	}
	return d
}

// checkWebhookShape checks that a subscription object has exactly the
// documented members, plus the extra ones named.
func checkWebhookShape(t *testing.T, m map[string]any, extra ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(append(slices.Clone(webhookFields), extra...))); !slices.Equal(got, want) {
		t.Errorf("webhook members %v, want %v", got, want)
	}
}

var secretPattern = regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=$`)

// TestWebhookAPI runs the webhook routes on each backend: the target
// checks without and with HUSTACK_WEBHOOK_ALLOW_INSECURE, scopes, vendor
// keys, keys narrower than a subscription (which see and touch only those
// whose events they could receive), the secret shown once, idempotent
// creation, malformed bodies, the deliveries and their replay, and the
// subscriptions of a revoked key. No worker runs: deliveries stay pending
// unless a test finishes them through the service.
func TestWebhookAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		b := open(t)
		// e allows any target (as with HUSTACK_WEBHOOK_ALLOW_INSECURE=true);
		// strict does not, and resolves names with a fake DNS.
		e := newEnv(t, b, withServiceOptions(store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true})))
		strict := newEnv(t, b, withServiceOptions(store.WithTargetPolicy(store.TargetPolicy{Resolver: dnstest.Resolver(map[string][]netip.Addr{
			"hooks.example.com":    {netip.MustParseAddr("93.184.215.14")},
			"internal.example.com": {netip.MustParseAddr("10.0.0.7")},
			"metadata.example.com": {netip.MustParseAddr("169.254.169.254")},
			"v6.example.com":       {netip.MustParseAddr("fd00:ec2::254")},
		})})))
		webhookTargets(t, strict, e)
		webhookScenarios(t, e)
	})
}

// webhookTargets checks where subscriptions may send events: only https to
// public addresses without the flag, anything with it.
func webhookTargets(t *testing.T, strict, insecure *env) {
	t.Run("targets", func(t *testing.T) {
		create := func(key, url string) request {
			return request{method: http.MethodPost, path: api.WebhooksPath, key: key,
				body: jsonBody(fmt.Sprintf(`{"url":%q,"events":["*"]}`, url))}
		}
		var public string
		refused := func(url string, msg ...string) scenario {
			return scenario{name: url, req: create(strict.keyA, url), msg: append([]string{"url: "}, msg...)}
		}
		run(t, strict, []group{
			{http.StatusCreated, []scenario{
				{name: "a name resolving to a public address", req: create(strict.keyA, "https://hooks.example.com/hustack?src=crm"),
					check: func(t *testing.T, r response) {
						w := decodeWebhook(t, r.body)
						if w.URL != "https://hooks.example.com/hustack?src=crm" || w.Status != "active" {
							t.Errorf("webhook %+v", w)
						}
						public = w.ID
					}},
				{name: "a public address", req: create(strict.keyA, "https://93.184.215.14:8443/hook")},
			}},
			{http.StatusBadRequest, []scenario{
				refused("http://hooks.example.com/hook", "must use https"),
				refused("https://127.0.0.1/hook", "127.0.0.1 is not a public address"),
				refused("https://127.8.9.10:8443/hook", "not a public address"),
				refused("https://10.1.2.3/hook", "10.1.2.3 is not a public address"),
				refused("https://192.168.1.20/hook", "not a public address"),
				refused("https://172.16.0.1/hook", "not a public address"),
				refused("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is not a public address"),
				refused("https://[::1]/hook", "::1 is not a public address"),
				refused("https://[::ffff:127.0.0.1]/hook", "127.0.0.1 is not a public address"),
				refused("https://[fd00:ec2::254]/hook", "not a public address"),
				refused("https://0.0.0.0/hook", "not a public address"),
				refused("https://localhost/hook", "localhost is not a public host"),
				refused("https://LOCALHOST:8443/hook", "is not a public host"),
				refused("https://api.localhost/hook", "is not a public host"),
				refused("https://internal.example.com/hook", "internal.example.com resolves to 10.0.0.7"),
				refused("https://metadata.example.com/hook", "resolves to 169.254.169.254"),
				refused("https://v6.example.com/hook", "resolves to fd00:ec2::254"),
				refused("https://nowhere.example.com/hook", "cannot resolve host nowhere.example.com"),
				refused("ftp://hooks.example.com/hook", "must use https, not ftp"),
				refused("https://user:pass@hooks.example.com/hook", "must not contain credentials"),
				refused("https://hooks.example.com/hook#frag", "must not contain a fragment"),
				refused("hooks.example.com/hook", "must be an absolute URL"),
				refused("https://hooks.example.com/"+strings.Repeat("a", store.MaxWebhookURL), "at most 2048 characters"),
			}},
		})
		// A changed URL is checked as a new one.
		run(t, strict, []group{
			{http.StatusBadRequest, []scenario{
				{name: "update to a private address", msg: []string{"url: ", "10.9.8.7 is not a public address"},
					req: request{method: http.MethodPatch, path: api.WebhooksPath + "/" + public, key: strict.keyA, body: jsonBody(`{"url":"https://10.9.8.7/"}`)}},
				{name: "update to http", msg: []string{"url: must use https"},
					req: request{method: http.MethodPatch, path: api.WebhooksPath + "/" + public, key: strict.keyA, body: jsonBody(`{"url":"http://hooks.example.com/"}`)}},
			}},
		})
		if got := decodeWebhook(t, strict.getWebhook(t, strict.keyA, public)); got.URL != "https://hooks.example.com/hustack?src=crm" {
			t.Errorf("a refused update changed the URL to %q", got.URL)
		}
		// With the flag: http and private or loopback targets.
		var accepted []scenario
		for _, url := range []string{"http://127.0.0.1:8080/hook", "http://localhost/hook", "https://[::1]:8443/hook",
			"http://10.1.2.3/hook", "http://169.254.169.254/hook", "http://receiver.internal/hook"} {
			accepted = append(accepted, scenario{name: url, req: create(insecure.keyA, url), check: func(t *testing.T, r response) {
				if w := decodeWebhook(t, r.body); w.URL != url {
					t.Errorf("url %q, want %q", w.URL, url)
				}
			}})
		}
		run(t, insecure, []group{
			{http.StatusCreated, accepted},
			{http.StatusBadRequest, []scenario{
				{name: "still no other scheme", req: create(insecure.keyA, "ftp://127.0.0.1/x"), msg: []string{"url: must use https, not ftp"}},
			}},
		})
	})
}

// getWebhook reads a subscription with key and returns its body, failing
// unless it is 200.
func (e *env) getWebhook(t *testing.T, key, id string) []byte {
	t.Helper()
	r := e.do(t, request{method: http.MethodGet, path: api.WebhooksPath + "/" + id, key: key})
	if r.status != http.StatusOK {
		t.Fatalf("GET webhook %s: status %d: %s", id, r.status, clip(r.body))
	}
	return r.body
}

// createWebhook subscribes with key and returns the subscription, failing
// unless it is created.
func (e *env) createWebhook(t *testing.T, key, body string) webhookJSON {
	t.Helper()
	r := e.do(t, request{method: http.MethodPost, path: api.WebhooksPath, key: key, body: jsonBody(body)})
	if r.status != http.StatusCreated {
		t.Fatalf("POST webhook %s: status %d: %s", body, r.status, clip(r.body))
	}
	return decodeWebhook(t, r.body)
}

func webhookScenarios(t *testing.T, e *env) {
	ctx := t.Context()
	// A key manages only the subscriptions whose events it could receive
	// itself: the reader may read deals, accounts and leads, the events of
	// the admin's and the vendor's subscriptions below.
	_, readerRaw := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ScopeReadWebhooks, store.ReadScope("deals"), store.ReadScope("accounts"),
		store.ReadScope("leads")}, nil)
	_, dealsWriter := e.newKey(e.svc, e.wsA.ID, []store.Scope{store.ScopeReadWebhooks, store.ScopeWriteWebhooks, store.ReadScope("deals")}, nil)
	vendorScopes := []store.Scope{store.ReadScope("leads"), store.WriteScope("leads"), store.ScopeReadWebhooks, store.ScopeWriteWebhooks}
	_, vendor := e.newFilteredKey(e.wsA.ID, vendorScopes, map[string]string{"source": "Vendor XYZ"})
	_, vendor2 := e.newFilteredKey(e.wsA.ID, vendorScopes, map[string]string{"source": "Vendor ABC"})
	noRead := e.keyWithout(store.ScopeReadWebhooks)
	noWrite := e.keyWithout(store.ScopeWriteWebhooks)
	noAccounts := e.keyWithout(store.ReadScope("accounts"))
	missing := store.NewID()

	post := func(path, key, body string) request {
		return request{method: http.MethodPost, path: path, key: key, body: jsonBody(body)}
	}
	patch := func(path, key, body string) request {
		return request{method: http.MethodPatch, path: path, key: key, body: jsonBody(body)}
	}
	get := func(path, key string) request { return request{method: http.MethodGet, path: path, key: key} }
	del := func(path, key string) request { return request{method: http.MethodDelete, path: path, key: key} }

	// The subscriptions: the admin's (created with an Idempotency-Key), a
	// deals-only key's, the vendor's, one of workspace B, and one the admin
	// makes for deal events only.
	idem := map[string]string{"Idempotency-Key": "subscribe-crm"}
	adminBody := `{"url":" http://127.0.0.1:9/hooks/crm ","events":["deal.created","account.*","deal.created"],"description":" CRM sync "}`
	first := e.do(t, request{method: http.MethodPost, path: api.WebhooksPath, key: e.keyA, body: jsonBody(adminBody), header: idem})
	if first.status != http.StatusCreated {
		t.Fatalf("create: %d %s", first.status, clip(first.body))
	}
	admin := decodeWebhook(t, first.body)
	if admin.Secret == nil {
		t.Fatalf("create: no secret: %s", clip(first.body))
	}
	secret := *admin.Secret
	hook := api.WebhooksPath + "/" + admin.ID
	deals := e.createWebhook(t, dealsWriter, `{"url":"http://127.0.0.1:9/deals","events":["*"]}`)
	vendorHook := e.createWebhook(t, vendor, `{"url":"http://127.0.0.1:9/vendor","events":["lead.created"]}`)
	other := e.createWebhook(t, e.keyB, `{"url":"http://127.0.0.1:9/other","events":["*"]}`)
	spare := e.createWebhook(t, e.keyA, `{"url":"http://127.0.0.1:9/spare","events":["deal.*"]}`)
	otherHook := api.WebhooksPath + "/" + other.ID

	// A ping to follow, and one of workspace B.
	pr := e.do(t, post(hook+"/test", e.keyA, ""))
	if pr.status != http.StatusAccepted {
		t.Fatalf("test: %d %s", pr.status, clip(pr.body))
	}
	ping := decodeDelivery(t, pr.body)
	otherPing := e.do(t, post(otherHook+"/test", e.keyB, ""))
	otherPingID := decodeDelivery(t, otherPing.body).ID
	dealsPing := decodeDelivery(t, e.do(t, post(api.WebhooksPath+"/"+deals.ID+"/test", dealsWriter, "")).body)

	noSecret := func(t *testing.T, r response) {
		t.Helper()
		if strings.Contains(string(r.body), secret) || strings.Contains(string(r.body), `"secret"`) {
			t.Errorf("the secret is shown again: %s", clip(r.body))
		}
	}
	listed := func(want ...string) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			t.Helper()
			noSecret(t, r)
			var l struct{ Data []map[string]any }
			if err := json.Unmarshal(r.body, &l); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range l.Data {
				checkWebhookShape(t, m)
				ids = append(ids, m["id"].(string))
			}
			if l.Data == nil || !slices.Equal(ids, want) {
				t.Errorf("listed %v, want %v (oldest first)", ids, want)
			}
		}
	}

	// listsOnly checks a list that holds the ids of want, in that order
	// among the others, and none of hidden.
	listsOnly := func(want []string, hidden ...string) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			t.Helper()
			noSecret(t, r)
			var shown []string
			for _, id := range decodePage(t, r).ids() {
				if slices.Contains(hidden, id) {
					t.Errorf("the list shows %s, which the key may not manage: %s", id, clip(r.body))
				}
				if slices.Contains(want, id) {
					shown = append(shown, id)
				}
			}
			if !slices.Equal(shown, want) {
				t.Errorf("listed %v of %v, want all of them (oldest first): %s", shown, want, clip(r.body))
			}
		}
	}

	t.Run("created", func(t *testing.T) {
		m := first.json(t)
		checkWebhookShape(t, m, "secret")
		if !secretPattern.MatchString(secret) {
			t.Errorf("secret %q", secret)
		}
		if k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_")); err != nil || len(k) != 32 {
			t.Errorf("secret key: %d bytes, %v", len(k), err)
		}
		if first.header.Get("Location") != hook {
			t.Errorf("Location %q", first.header.Get("Location"))
		}
		allReads := []string{"admin:keys", "read:accounts", "read:activities", "read:contacts", "read:deals", "read:leads", "read:notes"}
		if admin.URL != "http://127.0.0.1:9/hooks/crm" || !slices.Equal(admin.Events, []string{"account.*", "deal.created"}) ||
			admin.Description != "CRM sync" || !admin.Enabled || admin.Status != "active" || admin.DisabledReason != "" ||
			admin.FailingSince != nil || admin.ExpiresAt != nil || admin.Filter != nil || admin.APIKeyID != e.keyAID ||
			admin.WorkspaceID != e.wsA.ID || !slices.Equal(slices.Sorted(slices.Values(admin.Scopes)), allReads) || admin.CreatedAt.IsZero() {
			t.Errorf("webhook %+v", admin)
		}
		if !slices.Equal(deals.Scopes, []string{"read:deals"}) || !slices.Equal(deals.Events, []string{"*"}) {
			t.Errorf("a deals-only key's subscription: scopes %v, events %v", deals.Scopes, deals.Events)
		}
		if vendorHook.Filter["source"] != "Vendor XYZ" || len(vendorHook.Filter) != 1 || !slices.Equal(vendorHook.Scopes, []string{"read:leads"}) {
			t.Errorf("vendor subscription: filter %v, scopes %v", vendorHook.Filter, vendorHook.Scopes)
		}
		if ping.EventType != "ping" || ping.Status != "pending" || ping.Attempts != 0 || ping.WebhookID != admin.ID ||
			ping.ReplayOf != nil || ping.LastResponseCode != nil || ping.History == nil || ping.NextAttemptAt == nil {
			t.Errorf("ping %+v: %s", ping, clip(pr.body))
		}
	})

	run(t, e, []group{
		{http.StatusCreated, []scenario{
			{name: "idempotent create replays without the secret", req: request{method: http.MethodPost, path: api.WebhooksPath,
				key: e.keyA, body: jsonBody(adminBody), header: idem},
				header: map[string]string{"Idempotent-Replayed": "true", "Location": hook},
				check: func(t *testing.T, r response) {
					checkWebhookShape(t, r.json(t), "secret")
					if w := decodeWebhook(t, r.body); w.ID != admin.ID || w.Secret != nil || strings.Contains(string(r.body), secret) {
						t.Errorf("replay: id %s, secret %v", w.ID, w.Secret)
					}
				}},
			{name: "with an expiry", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["note.deleted"],"expires_at":"`+
				time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339)+`","description":null}`),
				check: func(t *testing.T, r response) {
					if w := decodeWebhook(t, r.body); w.ExpiresAt == nil || w.Status != "active" || w.Description != "" {
						t.Errorf("webhook %+v", w)
					}
				}},
			{name: "api_key events with admin:keys", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["api_key.*"]}`)},
			{name: "deal events with read:deals", req: post(api.WebhooksPath, dealsWriter, `{"url":"http://127.0.0.1:9/x","events":["deal.*","deal.updated"]}`)},
		}},
		{http.StatusOK, []scenario{
			{name: "list", req: get(api.WebhooksPath, e.keyA)},
			{name: "get", req: get(hook, e.keyA), check: func(t *testing.T, r response) {
				checkWebhookShape(t, r.json(t))
				noSecret(t, r)
				if w := decodeWebhook(t, r.body); w.ID != admin.ID || w.URL != admin.URL {
					t.Errorf("webhook %+v", w)
				}
			}},
			{name: "get with read:webhooks only", req: get(hook, readerRaw)},
			{name: "the vendor lists only its own", req: get(api.WebhooksPath, vendor), check: listed(vendorHook.ID)},
			{name: "another vendor lists none", req: get(api.WebhooksPath, vendor2), check: listed()},
			{name: "B lists only B's", req: get(api.WebhooksPath, e.keyB), check: listed(other.ID)},
			{name: "an unfiltered key sees the vendor's", req: get(api.WebhooksPath+"/"+vendorHook.ID, readerRaw)},
			{name: "the vendor gets its own", req: get(api.WebhooksPath+"/"+vendorHook.ID, vendor)},
			{name: "deliveries", req: get(hook+"/deliveries", e.keyA), check: func(t *testing.T, r response) {
				p := decodePage(t, r)
				if len(p.Data) != 1 || p.Data[0]["id"] != ping.ID || p.Pagination.HasMore || p.Pagination.NextCursor != nil {
					t.Errorf("deliveries %s", clip(r.body))
				}
			}},
			{name: "deliveries pending", req: get(hook+"/deliveries?status=pending&limit=1&offset=0", readerRaw), check: func(t *testing.T, r response) {
				if p := decodePage(t, r); len(p.Data) != 1 || p.Pagination.Limit != 1 {
					t.Errorf("deliveries %s", clip(r.body))
				}
			}},
			{name: "deliveries delivered: none yet", req: get(hook+"/deliveries?status=delivered", e.keyA), check: func(t *testing.T, r response) {
				if p := decodePage(t, r); len(p.Data) != 0 {
					t.Errorf("deliveries %s", clip(r.body))
				}
			}},
			{name: "a narrower key lists only what it could receive", req: get(api.WebhooksPath, dealsWriter),
				check: listsOnly([]string{deals.ID, spare.ID}, admin.ID, vendorHook.ID, other.ID)},
			{name: "a key lacking read:accounts lists no subscription to account events", req: get(api.WebhooksPath, noAccounts),
				check: listsOnly([]string{deals.ID, vendorHook.ID, spare.ID}, admin.ID, other.ID)},
			{name: "a narrower key redirects a subscription whose events it reads", req: patch(api.WebhooksPath+"/"+spare.ID, dealsWriter,
				`{"url":"http://127.0.0.1:9/deals"}`), check: func(t *testing.T, r response) {
				w := decodeWebhook(t, r.body)
				if w.URL != "http://127.0.0.1:9/deals" || !slices.Equal(w.Events, []string{"deal.*"}) || !slices.Contains(w.Scopes, "admin:keys") {
					t.Errorf("webhook %+v", w)
				}
			}},
			{name: "a narrower key's new events narrow the scopes to its own", req: patch(api.WebhooksPath+"/"+spare.ID, dealsWriter,
				`{"url":"http://127.0.0.1:9/deals-only","events":["deal.created"]}`), check: func(t *testing.T, r response) {
				w := decodeWebhook(t, r.body)
				if w.URL != "http://127.0.0.1:9/deals-only" || !slices.Equal(w.Scopes, []string{"read:deals"}) || !slices.Equal(w.Events, []string{"deal.created"}) {
					t.Errorf("webhook %+v", w)
				}
			}},
			{name: "update the description only", req: patch(hook, e.keyA, `{"description":"CRM sync, v2"}`), check: func(t *testing.T, r response) {
				w := decodeWebhook(t, r.body)
				if w.Description != "CRM sync, v2" || w.URL != admin.URL || !slices.Equal(w.Events, admin.Events) || w.UpdatedAt.Before(admin.UpdatedAt) {
					t.Errorf("webhook %+v", w)
				}
			}},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "not JSON", req: post(api.WebhooksPath, e.keyA, `{"url":`), msg: []string{"not valid JSON"}},
			{name: "an array", req: post(api.WebhooksPath, e.keyA, `[]`), msg: []string{"JSON object"}},
			{name: "empty", req: post(api.WebhooksPath, e.keyA, ``), msg: []string{"empty"}},
			{name: "an unknown field", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["*"],"secret":"whsec_mine"}`),
				msg: []string{`"secret"`, "Accepted: url, events, description, expires_at"}},
			{name: "no url", req: post(api.WebhooksPath, e.keyA, `{"events":["*"]}`), msg: []string{"url: is required"}},
			{name: "a null url", req: post(api.WebhooksPath, e.keyA, `{"url":null,"events":["*"]}`), msg: []string{"url: is required"}},
			{name: "an empty url", req: post(api.WebhooksPath, e.keyA, `{"url":" ","events":["*"]}`), msg: []string{"url: is required"}},
			{name: "url a number", req: post(api.WebhooksPath, e.keyA, `{"url":5,"events":["*"]}`), msg: []string{"url: must be a string, got a number"}},
			{name: "no events", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x"}`), msg: []string{"events: is required"}},
			{name: "events empty", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":[]}`), msg: []string{"events: at least one"}},
			{name: "events a string", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":"*"}`), msg: []string{"events: must be an array"}},
			{name: "events of numbers", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":[1]}`), msg: []string{"events: ", "item 0"}},
			{name: "an unknown event", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["deal.won"]}`),
				msg: []string{`events: unknown event type "deal.won"`}},
			{name: "a bad wildcard", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["deal*"]}`), msg: []string{"events: unknown"}},
			{name: "the ping", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["ping"]}`), msg: []string{"events: unknown"}},
			{name: "too many events", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":`+
				mustJSON(t, slices.Repeat([]string{"deal.created"}, store.MaxWebhookEvents+1))+`}`), msg: []string{"events: may hold at most 50"}},
			{name: "events beyond the key's read scopes", req: post(api.WebhooksPath, dealsWriter, `{"url":"http://127.0.0.1:9/x","events":["account.created"]}`),
				msg: []string{`events: "account.created" needs the scope read:accounts`}},
			{name: "a wildcard beyond the key's read scopes", req: post(api.WebhooksPath, dealsWriter, `{"url":"http://127.0.0.1:9/x","events":["lead.*"]}`),
				msg: []string{"needs the scope read:leads"}},
			{name: "key events without admin:keys", req: post(api.WebhooksPath, dealsWriter, `{"url":"http://127.0.0.1:9/x","events":["api_key.revoked"]}`),
				msg: []string{"needs the scope admin:keys"}},
			{name: "the vendor asks for contacts", req: post(api.WebhooksPath, vendor, `{"url":"http://127.0.0.1:9/x","events":["contact.created"]}`),
				msg: []string{"needs the scope read:contacts"}},
			{name: "a description too long", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["*"],"description":"`+
				strings.Repeat("é", store.MaxWebhookDescription+1)+`"}`), msg: []string{"description: must be at most 500 characters"}},
			{name: "a description not a string", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["*"],"description":{}}`),
				msg: []string{"description: must be a string"}},
			{name: "expires_at malformed", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["*"],"expires_at":"tomorrow"}`),
				msg: []string{"expires_at: must be an RFC 3339 time"}},
			{name: "expires_at in the past", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["*"],"expires_at":"2020-01-01T00:00:00Z"}`),
				msg: []string{"expires_at: must be in the future"}},
			{name: "update: not JSON", req: patch(hook, e.keyA, `nope`), msg: []string{"not valid JSON"}},
			{name: "update: an unknown field", req: patch(hook, e.keyA, `{"expires_at":"2030-01-01T00:00:00Z"}`), msg: []string{`"expires_at"`, "Accepted: url, events, description, enabled"}},
			{name: "update: a null url", req: patch(hook, e.keyA, `{"url":null}`), msg: []string{"url: cannot be null"}},
			{name: "update: null events", req: patch(hook, e.keyA, `{"events":null}`), msg: []string{"events: cannot be null"}},
			{name: "update: a null description", req: patch(hook, e.keyA, `{"description":null}`), msg: []string{"description: cannot be null"}},
			{name: "update: a null enabled", req: patch(hook, e.keyA, `{"enabled":null}`), msg: []string{"enabled: cannot be null"}},
			{name: "update: enabled a string", req: patch(hook, e.keyA, `{"enabled":"false"}`), msg: []string{"enabled: must be true or false, got a string"}},
			{name: "update: url an object", req: patch(hook, e.keyA, `{"url":{"href":"x"}}`), msg: []string{"url: must be a string"}},
			{name: "update: no events", req: patch(hook, e.keyA, `{"events":[]}`), msg: []string{"events: at least one"}},
			{name: "update: events beyond the key's scopes", req: patch(api.WebhooksPath+"/"+deals.ID, dealsWriter, `{"events":["note.created"]}`),
				msg: []string{"needs the scope read:notes"}},
			{name: "update: a bad url", req: patch(hook, e.keyA, `{"url":"mailto:x@example.com"}`), msg: []string{"url: "}},
			{name: "deliveries: a bad status", req: get(hook+"/deliveries?status=lost", e.keyA), msg: []string{"status: must be one of pending, delivered, failed, cancelled"}},
			{name: "deliveries: limit 0", req: get(hook+"/deliveries?limit=0", e.keyA), msg: []string{"limit: "}},
			{name: "deliveries: a negative offset", req: get(hook+"/deliveries?offset=-1", e.keyA), msg: []string{"offset: "}},
			{name: "deliveries: a cursor", req: get(hook+"/deliveries?cursor=abc", e.keyA), msg: []string{`"cursor"`}},
			{name: "list: a parameter", req: get(api.WebhooksPath+"?status=active", e.keyA), msg: []string{`"status"`}},
		}},
		{http.StatusForbidden, []scenario{
			{name: "create with read:webhooks only", req: post(api.WebhooksPath, readerRaw, `{"url":"http://127.0.0.1:9/x","events":["deal.created"]}`)},
			{name: "update with read:webhooks only", req: patch(hook, readerRaw, `{"enabled":false}`)},
			{name: "delete with read:webhooks only", req: del(hook, readerRaw)},
			{name: "test with read:webhooks only", req: post(hook+"/test", readerRaw, "")},
			{name: "replay with read:webhooks only", req: post(hook+"/deliveries/"+ping.ID+"/replay", readerRaw, "")},
			{name: "list without read:webhooks", req: get(api.WebhooksPath, noRead)},
			{name: "get without read:webhooks", req: get(hook, noRead)},
			{name: "deliveries without read:webhooks", req: get(hook+"/deliveries", noRead)},
			{name: "create without write:webhooks", req: post(api.WebhooksPath, noWrite, `{"url":"http://127.0.0.1:9/x","events":["*"]}`)},
		}},
		{http.StatusNotFound, []scenario{
			{name: "another workspace's: get", req: get(hook, e.keyB), msg: []string{"Webhook not found."}},
			{name: "another workspace's: update", req: patch(hook, e.keyB, `{"enabled":false}`)},
			{name: "another workspace's: delete", req: del(hook, e.keyB)},
			{name: "another workspace's: test", req: post(hook+"/test", e.keyB, "")},
			{name: "another workspace's: deliveries", req: get(hook+"/deliveries", e.keyB)},
			{name: "another workspace's: replay", req: post(hook+"/deliveries/"+ping.ID+"/replay", e.keyB, "")},
			{name: "another workspace's delivery under one's own subscription", req: post(hook+"/deliveries/"+otherPingID+"/replay", e.keyA, ""),
				msg: []string{"Delivery not found."}},
			{name: "another subscription's delivery", req: post(hook+"/deliveries/"+dealsPing.ID+"/replay", e.keyA, ""), msg: []string{"Delivery not found."}},
			{name: "a vendor reads another vendor's", req: get(api.WebhooksPath+"/"+vendorHook.ID, vendor2)},
			{name: "a vendor changes another vendor's", req: patch(api.WebhooksPath+"/"+vendorHook.ID, vendor2, `{"enabled":false}`)},
			{name: "a vendor reads an unfiltered subscription", req: get(hook, vendor)},
			{name: "a vendor deletes an unfiltered subscription", req: del(hook, vendor)},
			// A key without the read scope of every event a subscription
			// receives (here read:accounts) cannot see or touch it.
			{name: "a narrower key reads a broader subscription", req: get(hook, dealsWriter), msg: []string{"Webhook not found."}},
			{name: "a narrower key redirects a broader subscription", req: patch(hook, dealsWriter, `{"url":"http://127.0.0.1:9/mine"}`),
				msg: []string{"Webhook not found."}},
			{name: "a narrower key turns a broader subscription off", req: patch(hook, dealsWriter, `{"enabled":false}`)},
			{name: "a narrower key lists a broader subscription's deliveries", req: get(hook+"/deliveries", dealsWriter)},
			{name: "a narrower key replays a broader subscription's delivery", req: post(hook+"/deliveries/"+ping.ID+"/replay", dealsWriter, "")},
			{name: "a narrower key tests a broader subscription", req: post(hook+"/test", dealsWriter, "")},
			{name: "a key lacking only read:accounts reads a subscription to account events", req: get(hook, noAccounts)},
			{name: "a narrower key narrows a broader subscription's events", req: patch(hook, dealsWriter, `{"events":["deal.created"]}`)},
			{name: "a key lacking only read:accounts deletes it", req: del(hook, noAccounts)},
			{name: "a narrower key deletes a broader subscription", req: del(hook, dealsWriter)},
			{name: "missing", req: get(api.WebhooksPath+"/"+missing, e.keyA)},
			{name: "a malformed id", req: get(api.WebhooksPath+"/not-an-id", e.keyA)},
			{name: "a malformed delivery id", req: post(hook+"/deliveries/nope/replay", e.keyA, "")},
			{name: "a missing delivery", req: post(hook+"/deliveries/"+missing+"/replay", e.keyA, "")},
			{name: "deliveries of a missing subscription", req: get(api.WebhooksPath+"/"+missing+"/deliveries", e.keyA)},
		}},
		{http.StatusConflict, []scenario{
			{name: "replay a pending delivery", req: post(hook+"/deliveries/"+ping.ID+"/replay", e.keyA, ""), msg: []string{"still pending"}},
		}},
		{http.StatusUnprocessableEntity, []scenario{
			{name: "the same Idempotency-Key for another subscription", req: request{method: http.MethodPost, path: api.WebhooksPath,
				key: e.keyA, body: jsonBody(`{"url":"http://127.0.0.1:9/y","events":["*"]}`), header: idem}},
		}},
		{http.StatusUnsupportedMediaType, []scenario{
			{name: "text/plain", req: request{method: http.MethodPost, path: api.WebhooksPath, key: e.keyA, body: jsonBody(`{}`),
				header: map[string]string{"Content-Type": "text/plain"}}},
		}},
		{http.StatusRequestEntityTooLarge, []scenario{
			{name: "a body over 1 MiB", req: post(api.WebhooksPath, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["*"],"description":"`+
				strings.Repeat("x", api.MaxBodyBytes)+`"}`)},
		}},
	})

	// The idempotent replay and the refused requests made nothing: the
	// admin's key still lists what it made, and the deliveries are as they
	// were.
	t.Run("nothing made twice", func(t *testing.T) {
		r := e.do(t, get(api.WebhooksPath, e.keyA))
		var n int
		for _, m := range decodePage(t, r).Data {
			if m["url"] == admin.URL {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d subscriptions to %s, want 1", n, admin.URL)
		}
		if p := decodePage(t, e.do(t, get(hook+"/deliveries", e.keyA))); len(p.Data) != 1 {
			t.Errorf("%d deliveries, want the ping only", len(p.Data))
		}
		if w := decodeWebhook(t, e.getWebhook(t, e.keyA, admin.ID)); !w.Enabled || w.Description != "CRM sync, v2" || w.URL != admin.URL {
			t.Errorf("refused updates changed the subscription: %+v", w)
		}
	})

	t.Run("disable and enable", func(t *testing.T) {
		run(t, e, []group{{http.StatusOK, []scenario{
			{name: "disable", req: patch(hook, e.keyA, `{"enabled":false}`), check: func(t *testing.T, r response) {
				if w := decodeWebhook(t, r.body); w.Enabled || w.Status != "disabled" || w.DisabledReason != store.DisabledByClient {
					t.Errorf("webhook %+v", w)
				}
			}},
			{name: "disabled, still listed", req: get(hook, readerRaw), check: func(t *testing.T, r response) {
				if w := decodeWebhook(t, r.body); w.Status != "disabled" {
					t.Errorf("status %s", w.Status)
				}
			}},
			{name: "enable, with new events and url", req: patch(hook, e.keyA, `{"enabled":true,"events":["*"],"url":"http://127.0.0.1:9/v2"}`),
				check: func(t *testing.T, r response) {
					w := decodeWebhook(t, r.body)
					if !w.Enabled || w.Status != "active" || w.DisabledReason != "" || w.URL != "http://127.0.0.1:9/v2" || !slices.Equal(w.Events, []string{"*"}) {
						t.Errorf("webhook %+v", w)
					}
				}},
			{name: "new events take the key's scopes", req: patch(api.WebhooksPath+"/"+deals.ID, e.keyA, `{"events":["note.created"]}`),
				check: func(t *testing.T, r response) {
					if w := decodeWebhook(t, r.body); !slices.Contains(w.Scopes, "read:notes") || !slices.Equal(w.Events, []string{"note.created"}) {
						t.Errorf("webhook %+v", w)
					}
				}},
		}}})
	})

	t.Run("replay", func(t *testing.T) {
		d, _, err := e.svc.FindDelivery(ctx, e.wsA.ID, ping.ID)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().UTC().Truncate(time.Millisecond)
		d.Status, d.Attempts, d.NextAttemptAt = store.DeliveryFailed, 2, nil
		d.History = []store.Attempt{{At: at, StatusCode: 0, LatencyMS: 10000, Error: "timeout"}, {At: at, StatusCode: 400, LatencyMS: 7, Error: "HTTP 400"}}
		if err := e.svc.UpdateDelivery(ctx, d, 0); err != nil {
			t.Fatal(err)
		}
		var replayID string
		run(t, e, []group{
			{http.StatusOK, []scenario{
				{name: "the failed delivery's last attempt", req: get(hook+"/deliveries?status=failed", e.keyA), check: func(t *testing.T, r response) {
					var p struct{ Data []deliveryJSON }
					if err := json.Unmarshal(r.body, &p); err != nil || len(p.Data) != 1 {
						t.Fatalf("deliveries %v: %s", err, clip(r.body))
					}
					got := p.Data[0]
					if got.Attempts != 2 || len(got.History) != 2 || got.LastResponseCode == nil || *got.LastResponseCode != 400 ||
						got.LastLatencyMS == nil || *got.LastLatencyMS != 7 || got.NextAttemptAt != nil {
						t.Errorf("delivery %+v", got)
					}
				}},
			}},
			{http.StatusAccepted, []scenario{
				{name: "replay a failed delivery", req: post(hook+"/deliveries/"+ping.ID+"/replay", e.keyA, ""), check: func(t *testing.T, r response) {
					got := decodeDelivery(t, r.body)
					if got.ReplayOf == nil || *got.ReplayOf != ping.ID || got.EventID != ping.EventID || got.EventType != "ping" ||
						got.Status != "pending" || got.Attempts != 0 || got.ID == ping.ID || got.LastResponseCode != nil {
						t.Errorf("replay %+v", got)
					}
					replayID = got.ID
				}},
				{name: "replay it again", req: post(hook+"/deliveries/"+ping.ID+"/replay", e.keyA, "")},
			}},
		})
		// A replay of a replay names the original.
		rd, _, err := e.svc.FindDelivery(ctx, e.wsA.ID, replayID)
		if err != nil {
			t.Fatal(err)
		}
		rd.Status, rd.Attempts, rd.NextAttemptAt = store.DeliveryDelivered, 1, nil
		rd.History = []store.Attempt{{At: at, StatusCode: 200, LatencyMS: 3}}
		if err := e.svc.UpdateDelivery(ctx, rd, 0); err != nil {
			t.Fatal(err)
		}
		r := e.do(t, post(hook+"/deliveries/"+replayID+"/replay", e.keyA, ""))
		if got := decodeDelivery(t, r.body); r.status != http.StatusAccepted || got.ReplayOf == nil || *got.ReplayOf != ping.ID {
			t.Errorf("replay of a replay: %d %s", r.status, clip(r.body))
		}
		// Newest first, and paged.
		p := decodePage(t, e.do(t, get(hook+"/deliveries?limit=2", e.keyA)))
		if len(p.Data) != 2 || !p.Pagination.HasMore || p.Data[len(p.Data)-1]["id"] == ping.ID {
			t.Errorf("first page of 4 deliveries: %+v", p)
		}
		p = decodePage(t, e.do(t, get(hook+"/deliveries?limit=2&offset=2", e.keyA)))
		if len(p.Data) != 2 || p.Pagination.HasMore || p.Data[1]["id"] != ping.ID {
			t.Errorf("second page: %+v", p)
		}
	})

	t.Run("delete", func(t *testing.T) {
		run(t, e, []group{
			{http.StatusNoContent, []scenario{
				{name: "the vendor unsubscribes", req: del(api.WebhooksPath+"/"+vendorHook.ID, vendor)},
				{name: "unsubscribe", req: request{method: http.MethodDelete, path: hook, key: e.keyA, header: map[string]string{"Idempotency-Key": "unsubscribe"}}},
				{name: "unsubscribe replayed", req: request{method: http.MethodDelete, path: hook, key: e.keyA, header: map[string]string{"Idempotency-Key": "unsubscribe"}},
					header: map[string]string{"Idempotent-Replayed": "true"}},
			}},
			{http.StatusNotFound, []scenario{
				{name: "get", req: get(hook, e.keyA)},
				{name: "deliveries", req: get(hook+"/deliveries", e.keyA)},
				{name: "test", req: post(hook+"/test", e.keyA, "")},
				{name: "delete again", req: del(hook, e.keyA)},
			}},
			{http.StatusOK, []scenario{
				{name: "B's is untouched", req: get(otherHook, e.keyB)},
			}},
		})
		if _, _, err := e.svc.FindDelivery(ctx, e.wsA.ID, ping.ID); store.ErrorCode(err) != store.ENOTFOUND {
			t.Errorf("the deleted subscription's delivery: %v, want not_found", err)
		}
	})

	t.Run("replay after the events changed", func(t *testing.T) {
		leads := e.createWebhook(t, e.keyA, `{"url":"http://127.0.0.1:9/leads","events":["lead.created"]}`)
		leadsHook := api.WebhooksPath + "/" + leads.ID
		lead := e.create(e.keyA, store.Leads, minimalBody(store.Leads))
		d := fannedOut(t, e, leads.ID, lead.ID)
		at := time.Now().UTC().Truncate(time.Millisecond)
		d.Status, d.Attempts, d.NextAttemptAt = store.DeliveryDelivered, 1, nil
		d.History = []store.Attempt{{At: at, StatusCode: 204, LatencyMS: 4}}
		if err := e.svc.UpdateDelivery(ctx, d, 0); err != nil {
			t.Fatal(err)
		}
		replay := post(leadsHook+"/deliveries/"+d.ID+"/replay", e.keyA, "")
		run(t, e, []group{
			{http.StatusOK, []scenario{{name: "ask for notes instead", req: patch(leadsHook, e.keyA, `{"events":["note.*"]}`)}}},
			{http.StatusConflict, []scenario{{name: "replay an event the subscription no longer receives", req: replay,
				msg: []string{"no longer receives lead.created events"}}}},
			{http.StatusOK, []scenario{{name: "ask for leads again", req: patch(leadsHook, e.keyA, `{"events":["lead.*","note.*"]}`)}}},
			{http.StatusAccepted, []scenario{{name: "replay it then", req: replay, check: func(t *testing.T, r response) {
				got := decodeDelivery(t, r.body)
				if got.EventType != "lead.created" || got.EventID != d.EventID || got.ReplayOf == nil || *got.ReplayOf != d.ID || got.Status != "pending" {
					t.Errorf("replay %+v", got)
				}
			}}}},
		})
		if p := decodePage(t, e.do(t, get(leadsHook+"/deliveries", e.keyA))); len(p.Data) != 2 {
			t.Errorf("%d deliveries after one refused and one accepted replay, want 2", len(p.Data))
		}
	})

	t.Run("revoking a key disables its subscriptions", func(t *testing.T) {
		leadScopes := []store.Scope{store.ReadScope("leads"), store.ScopeReadWebhooks, store.ScopeWriteWebhooks}
		revokedKey, revokedRaw := e.newKey(e.svc, e.wsA.ID, leadScopes, nil)
		rotatedKey, rotatedRaw := e.newKey(e.svc, e.wsA.ID, leadScopes, nil)
		byRevoked := api.WebhooksPath + "/" + e.createWebhook(t, revokedRaw, `{"url":"http://127.0.0.1:9/revoked","events":["lead.*"]}`).ID
		byRotated := api.WebhooksPath + "/" + e.createWebhook(t, rotatedRaw, `{"url":"http://127.0.0.1:9/rotated","events":["lead.*"]}`).ID
		byAdmin := api.WebhooksPath + "/" + e.createWebhook(t, e.keyA, `{"url":"http://127.0.0.1:9/admin","events":["lead.*"]}`).ID
		isDisabled := func(t *testing.T, r response) {
			w := decodeWebhook(t, r.body)
			if w.Enabled || w.Status != "disabled" || w.DisabledReason != store.DisabledByRevocation {
				t.Errorf("the revoked key's subscription: enabled %v, status %q, disabled_reason %q", w.Enabled, w.Status, w.DisabledReason)
			}
		}
		isActive := func(t *testing.T, r response) {
			if w := decodeWebhook(t, r.body); !w.Enabled || w.Status != "active" || w.DisabledReason != "" {
				t.Errorf("subscription %+v, want active", w)
			}
		}
		run(t, e, []group{
			// The old key of a rotation expires at once: it is not revoked.
			{http.StatusCreated, []scenario{{name: "rotate a key", req: post(api.KeysPath+"/"+rotatedKey.ID+"/rotate", e.keyA, `{"expire_old_in":"now"}`)}}},
			{http.StatusOK, []scenario{
				{name: "revoke a key", req: post(api.KeysPath+"/"+revokedKey.ID+"/revoke", e.keyA, "")},
				{name: "its subscription is disabled, with the reason", req: get(byRevoked, e.keyA), check: isDisabled},
				{name: "the list shows it disabled", req: get(api.WebhooksPath, e.keyA), check: func(t *testing.T, r response) {
					n := 0
					for _, m := range decodePage(t, r).Data {
						if api.WebhooksPath+"/"+m["id"].(string) == byRevoked {
							n++
							if m["enabled"] != false || m["status"] != "disabled" || m["disabled_reason"] != store.DisabledByRevocation {
								t.Errorf("listed %v", m)
							}
						}
					}
					if n != 1 {
						t.Errorf("the revoked key's subscription is listed %d times, want once", n)
					}
				}},
				{name: "the rotated key's subscription stays active", req: get(byRotated, e.keyA), check: isActive},
				{name: "another key's subscription stays active", req: get(byAdmin, e.keyA), check: isActive},
				{name: "revoking it again changes nothing", req: post(api.KeysPath+"/"+revokedKey.ID+"/revoke", e.keyA, "")},
				// A patch applies to the subscription as stored: changing
				// its description leaves it disabled.
				{name: "a description patch keeps it disabled", req: patch(byRevoked, e.keyA, `{"description":"revoked vendor"}`), check: isDisabled},
				{name: "still disabled", req: get(byRevoked, e.keyA), check: isDisabled},
			}},
			{http.StatusGone, []scenario{
				{name: "the revoked key reads its subscription", req: get(byRevoked, revokedRaw), code: "revoked_key"},
				{name: "the rotated-out key reads its subscription", req: get(byRotated, rotatedRaw), code: "expired_key"},
			}},
		})
		// A manager turns it back on explicitly.
		run(t, e, []group{{http.StatusOK, []scenario{
			{name: "enable it again", req: patch(byRevoked, e.keyA, `{"enabled":true}`), check: isActive},
		}}})
	})
}

// fannedOut hands the events waiting in the outbox to the service's fan-out
// (as the worker does) and returns the delivery of the event about record
// id to the subscription webhookID.
func fannedOut(t *testing.T, e *env, webhookID, id string) *store.Delivery {
	t.Helper()
	ctx := t.Context()
	for range 10 {
		evs, err := e.svc.ClaimEvents(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		ds, err := e.svc.FanOut(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(evs))
		for i, ev := range evs {
			ids[i] = ev.ID
		}
		if err := e.svc.AckEvents(ctx, ids); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			var ev struct {
				Data struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			if d.WebhookID == webhookID && json.Unmarshal(d.Payload, &ev) == nil && ev.Data.ID == id {
				return d
			}
		}
	}
	t.Fatalf("no delivery of record %s to subscription %s", id, webhookID)
	return nil
}

// TestWebhookExpiry checks the derived status of a subscription past its
// expires_at.
func TestWebhookExpiry(t *testing.T) {
	clock := newTestClock()
	e := newEnv(t, sqliteBackend(t), withClock(clock),
		withServiceOptions(store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true})))
	w := e.createWebhook(t, e.keyA, `{"url":"http://127.0.0.1:9/x","events":["*"],"expires_at":"`+
		clock.Now().Add(time.Hour).Format(time.RFC3339)+`"}`)
	if w.Status != "active" {
		t.Fatalf("status %s", w.Status)
	}
	clock.set(clock.Now().Add(2 * time.Hour))
	if got := decodeWebhook(t, e.getWebhook(t, e.keyA, w.ID)); got.Status != "expired" || !got.Enabled {
		t.Errorf("past expires_at: status %s, enabled %v", got.Status, got.Enabled)
	}
}

// TestOpenAPIWebhooks checks the deliveries as the document describes them:
// one webhook per group of events, with the signature headers and every
// event type, built only from schemas the paths use too (code generators
// such as oapi-codegen drop the others); and per key, only what the key's
// subscriptions could receive.
func TestOpenAPIWebhooks(t *testing.T) {
	data := api.OpenAPIJSON(nil)
	doc := loadOpenAPI(t, data)
	var groups []string
	for _, r := range store.Resources {
		groups = append(groups, r.Singular)
	}
	groups = append(groups, store.EventAPIKey, store.EventPing)
	var types []string
	for _, g := range groups {
		item := doc.Webhooks[g]
		if item == nil || item.Post == nil {
			t.Errorf("no webhook %s", g)
			continue
		}
		op := item.Post
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			if p := op.Parameters.GetByInAndName("header", h); p == nil || !p.Required {
				t.Errorf("webhook %s: header %s not documented as always sent", g, h)
			}
		}
		if op.Security == nil || len(*op.Security) != 0 {
			t.Errorf("webhook %s: security %v, want none (the receiver checks the signature)", g, op.Security)
		}
		for _, code := range []string{"2XX", "410", "429", "503", "default"} {
			if op.Responses.Value(code) == nil {
				t.Errorf("webhook %s: no response %s", g, code)
			}
		}
		body := op.RequestBody.Value.Content.Get("application/json").Schema.Value
		for _, member := range []string{"id", "type", "created_at", "workspace_id", "data"} {
			if !slices.Contains(body.Required, member) {
				t.Errorf("webhook %s: body member %s not required", g, member)
			}
		}
		for _, v := range body.Properties["type"].Value.Enum {
			types = append(types, v.(string))
		}
	}
	if slices.Sort(types); !slices.Equal(types, slices.Sorted(slices.Values(api.EventTypesWithPing()))) {
		t.Errorf("the webhooks document the event types %v, want %v", types, api.EventTypesWithPing())
	}

	// Every schema the webhooks refer to is one the paths use too,
	// directly or through other schemas.
	var raw struct {
		Paths      json.RawMessage `json:"paths"`
		Webhooks   json.RawMessage `json:"webhooks"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`"\$ref":"#/components/schemas/([^"]+)"`)
	fromPaths := map[string]bool{}
	queue := []json.RawMessage{raw.Paths}
	for len(queue) > 0 && len(fromPaths) <= len(raw.Components.Schemas) {
		next := queue[0]
		queue = queue[1:]
		for _, m := range refs.FindAllStringSubmatch(string(next), -1) {
			if !fromPaths[m[1]] {
				fromPaths[m[1]] = true
				queue = append(queue, raw.Components.Schemas[m[1]])
			}
		}
	}
	for _, m := range refs.FindAllStringSubmatch(string(raw.Webhooks), -1) {
		if !fromPaths[m[1]] {
			t.Errorf("the webhooks refer to schema %s, which no path uses", m[1])
		}
	}

	e := newEnv(t, sqliteBackend(t))
	for _, tc := range []struct {
		scopes []store.Scope
		want   []string
	}{
		{[]store.Scope{store.ReadScope("deals"), store.WriteScope("deals")}, nil},
		{[]store.Scope{store.ScopeReadWebhooks, store.ReadScope("deals"), store.ReadScope("notes")}, []string{"deal", "note", "ping"}},
		{[]store.Scope{store.ScopeWriteWebhooks, store.ScopeAdminKeys}, []string{"api_key", "ping"}},
	} {
		_, key := e.newKey(e.svc, e.wsA.ID, tc.scopes, nil)
		d := loadOpenAPI(t, getDoc(t, e, api.OpenAPIPath, key).body)
		var got []string
		for name := range d.Webhooks {
			got = append(got, name)
		}
		if slices.Sort(got); !slices.Equal(got, tc.want) {
			t.Errorf("scopes %v: webhooks %v, want %v", tc.scopes, got, tc.want)
		}
	}
	page := string(getDoc(t, e, api.DocsPath, "").body)
	for _, g := range groups {
		if !strings.Contains(page, `id="event-`+g+`"`) {
			t.Errorf("the page does not show the webhook %s", g)
		}
	}
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		if !strings.Contains(page, "<code>"+h+"</code>") {
			t.Errorf("the page does not show the header %s", h)
		}
	}
}
