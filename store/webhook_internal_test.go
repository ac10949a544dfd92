package store

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store/dnstest"
)

func TestMatchEvent(t *testing.T) {
	for _, c := range []struct {
		pattern, typ string
		want         bool
	}{
		{"*", "deal.created", true},
		{"*", "api_key.revoked", true},
		{"deal.*", "deal.updated", true},
		{"deal.*", "deals.updated", false},
		{"deal.*", "lead.updated", false},
		{"deal.created", "deal.created", true},
		{"deal.created", "deal.updated", false},
		{"de*", "deal.created", false},
		{"api_key.*", "api_key.expiring", true},
	} {
		if got := MatchEvent(c.pattern, c.typ); got != c.want {
			t.Errorf("MatchEvent(%q, %q) = %v, want %v", c.pattern, c.typ, got, c.want)
		}
	}
	types := EventTypes()
	if len(types) != 3*len(Resources)+3 || !slices.Contains(types, "activity.deleted") || !slices.Contains(types, "api_key.expiring") {
		t.Errorf("EventTypes() = %v", types)
	}
}

func TestNormalizeEvents(t *testing.T) {
	reader := []Scope{ReadScope("deals"), ReadScope("accounts"), WriteScope("notes")}
	admin := append(slices.Clone(reader), ScopeAdminKeys)
	for _, c := range []struct {
		name   string
		in     []string
		scopes []Scope
		want   []string
		errHas string
	}{
		{"sorted and deduplicated", []string{"deal.updated", " deal.created", "deal.updated"}, reader, []string{"deal.created", "deal.updated"}, ""},
		{"wildcards", []string{"*", "account.*"}, reader, []string{"*", "account.*"}, ""},
		{"key events need admin", []string{"api_key.*"}, reader, nil, "admin:keys"},
		{"key events with admin", []string{"api_key.revoked"}, admin, []string{"api_key.revoked"}, ""},
		{"resource without read scope", []string{"note.created"}, reader, nil, "read:notes"},
		{"resource prefix without read scope", []string{"contact.*"}, reader, nil, "read:contacts"},
		{"unknown type", []string{"deal.archived"}, reader, nil, "unknown event type"},
		{"ping is not subscribable", []string{"ping"}, reader, nil, "unknown event type"},
		{"bad wildcard", []string{"deal*"}, reader, nil, "unknown event type"},
		{"empty", nil, reader, nil, "at least one"},
		{"no read scope at all", []string{"*"}, []Scope{WriteScope("deals")}, nil, "no read scope"},
		{"too many", slices.Repeat([]string{"deal.created"}, MaxWebhookEvents+1), reader, nil, "at most"},
	} {
		got, err := normalizeEvents(c.in, c.scopes)
		if c.errHas != "" {
			if err == nil || !strings.Contains(ErrorMessage(err), c.errHas) || ErrorCode(err) != EBADREQUEST {
				t.Errorf("%s: err = %v, want bad_request containing %q", c.name, err, c.errHas)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestWebhookReceives(t *testing.T) {
	w := &Webhook{Events: []string{"*"}, Scopes: []Scope{ReadScope("deals")}}
	if !w.Receives("deal.created") || w.Receives("account.created") || w.Receives("api_key.created") || w.Receives("ping") {
		t.Error("a * subscription must receive exactly what its scopes allow")
	}
	w = &Webhook{Events: []string{"deal.deleted"}, Scopes: []Scope{ReadScope("deals"), ScopeAdminKeys}}
	if w.Receives("deal.created") || !w.Receives("deal.deleted") {
		t.Error("a subscription receives only the events it asks for")
	}
}

func TestFilterAllows(t *testing.T) {
	f := map[string]string{"owner": "vendor-a"}
	if !filterAllows(nil, "deal.created", map[string]any{"owner": "x"}) {
		t.Error("no filter allows everything")
	}
	if !filterAllows(f, "deal.created", map[string]any{"owner": "vendor-a"}) ||
		filterAllows(f, "deal.created", map[string]any{"owner": "vendor-b"}) ||
		filterAllows(f, "deal.created", map[string]any{}) {
		t.Error("record events must match the filter")
	}
	if !filterAllows(f, "api_key.created", map[string]any{"filter": map[string]any{"owner": "vendor-a", "region": "eu"}}) ||
		filterAllows(f, "api_key.created", map[string]any{"filter": nil}) {
		t.Error("key events must be about keys within the filter")
	}
}

func TestNewRecordEventDeleted(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	rec := &Record{Resource: Deals, ID: NewID(), WorkspaceID: NewID(), Fields: map[string]any{"name": "Big", "external_id": "d-1"},
		CreatedAt: at, UpdatedAt: at, CreatedVia: CreatedViaAPI}
	ev, err := NewRecordEvent(rec, KindCreated)
	if err != nil || ev.Type != "deal.created" || ev.WorkspaceID != rec.WorkspaceID || !ValidID(ev.ID) {
		t.Fatalf("created event = %+v, %v", ev, err)
	}
	del := at.Add(time.Minute)
	tomb := *rec
	tomb.DeletedAt, tomb.UpdatedAt = &del, del
	ev, err = NewRecordEvent(&tomb, KindDeleted)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatalf("data %s: %v", ev.Data, err)
	}
	if data["deleted"] != true || data["deleted_at"] != "2026-11-25T10:01:00.000Z" || data["name"] != "Big" || data["id"] != rec.ID {
		t.Errorf("deleted event data = %s", ev.Data)
	}
	if !ev.CreatedAt.Equal(del) || ev.Type != "deal.deleted" {
		t.Errorf("deleted event = %+v", ev)
	}
	body, _ := json.Marshal(ev)
	want := `{"id":"` + ev.ID + `","type":"deal.deleted","created_at":"2026-11-25T10:01:00.000Z","workspace_id":"` + rec.WorkspaceID + `","data":{"id":`
	if !strings.HasPrefix(string(body), want) {
		t.Errorf("event JSON = %s", body)
	}
}

func TestWebhookSecret(t *testing.T) {
	a, b := GenerateWebhookSecret(), GenerateWebhookSecret()
	if a == b || !strings.HasPrefix(a, SecretPrefix) {
		t.Fatalf("secrets %q, %q", a, b)
	}
	key, err := WebhookSecretKey(a)
	if err != nil || len(key) != 32 {
		t.Errorf("key of %q = %d bytes, %v", a, len(key), err)
	}
}

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "8.8.8.8": true, "2606:4700:4700::1111": true,
		"127.0.0.1": false, "127.8.9.10": false, "10.1.2.3": false, "172.16.0.1": false, "172.31.255.255": false,
		"192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "255.255.255.255": false,
		"224.0.0.1": false, "::1": false, "::": false, "fe80::1": false, "fd00:ec2::254": false, "::ffff:127.0.0.1": false,
		"::ffff:10.0.0.1": false, "64:ff9b::a00:1": false, "2002:a00:1::": false, "172.32.0.1": true,
		"::1%lo": false, "fe80::1%eth0": false, "2606:4700:4700::1111%eth0": false, "fd00:ec2::254%lo": false,
		"::7f00:1": false, "fec0::1": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	res := dnstest.Resolver(map[string][]netip.Addr{
		"hooks.example.com": {netip.MustParseAddr("93.184.216.34")},
		"internal.example":  {netip.MustParseAddr("10.0.0.7")},
		"mixed.example":     {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")},
		"metadata.example":  {netip.MustParseAddr("169.254.169.254")},
		"v6private.example": {netip.MustParseAddr("fd00::1")},
	})
	strict := TargetPolicy{Resolver: res}
	insecure := TargetPolicy{AllowInsecure: true, Resolver: res}
	for _, c := range []struct {
		url    string
		p      TargetPolicy
		errHas string // "" when allowed
	}{
		{"https://hooks.example.com/zap/123", strict, ""},
		{"https://93.184.216.34:8443/hook", strict, ""},
		{"https://internal.example/hook", strict, "not a public address"},
		{"https://mixed.example/hook", strict, "127.0.0.1"},
		{"https://metadata.example/latest", strict, "169.254.169.254"},
		{"https://v6private.example/", strict, "fd00::1"},
		{"https://nowhere.example/", strict, "cannot resolve"},
		{"https://127.0.0.1/hook", strict, "not a public address"},
		{"https://[::1]:8080/hook", strict, "not a public address"},
		{"https://[::1%25lo]:8080/hook", strict, "not a public address"},
		{"https://[fe80::1%25eth0]/hook", strict, "not a public address"},
		{"https://169.254.169.254/latest/meta-data", strict, "not a public address"},
		{"https://10.0.0.1/", strict, "not a public address"},
		{"https://[::ffff:192.168.0.1]/", strict, "not a public address"},
		{"https://localhost:8080/hook", strict, "not a public host"},
		{"https://api.localhost/hook", strict, "not a public host"},
		{"http://hooks.example.com/zap", strict, "must use https"},
		{"ftp://hooks.example.com/", strict, "not ftp"},
		{"https://user:pw@hooks.example.com/", strict, "credentials"},
		{"https://hooks.example.com/#frag", strict, "fragment"},
		{"hooks.example.com/path", strict, "absolute URL"},
		{"", strict, "required"},
		{"https://hooks.example.com/" + strings.Repeat("a", MaxWebhookURL), strict, "at most"},
		{"http://127.0.0.1:9999/hook", insecure, ""},
		{"http://localhost:9999/hook", insecure, ""},
		{"https://internal.example/hook", insecure, ""},
		{"https://user:pw@127.0.0.1/", insecure, "credentials"},
	} {
		_, err := c.p.CheckURL(context.Background(), c.url)
		if c.errHas == "" {
			if err != nil {
				t.Errorf("CheckURL(%q, insecure=%v) = %v, want allowed", c.url, c.p.AllowInsecure, err)
			}
			continue
		}
		if err == nil || ErrorCode(err) != EBADREQUEST || !strings.Contains(ErrorMessage(err), c.errHas) {
			t.Errorf("CheckURL(%q, insecure=%v) = %v, want bad_request containing %q", c.url, c.p.AllowInsecure, err, c.errHas)
		}
	}
}
