package storetest

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// t0 is the suite's reference time; every time the suite stores is t0 plus
// whole milliseconds, the precision every backend keeps.
var t0 = time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d).Truncate(time.Millisecond) }

func ptr[T any](v T) *T { return &v }

// clock is a settable clock for store.WithClock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// wantCode fails the test unless err is a *store.Error with the given code.
func wantCode(t *testing.T, err error, code string) *store.Error {
	t.Helper()
	var e *store.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want *store.Error with code %q", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("got error code %q (%v), want %q", e.Code, err, code)
	}
	return e
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func newWorkspace(t *testing.T, b store.Backend, name string, created time.Time) *store.Workspace {
	t.Helper()
	w := &store.Workspace{ID: store.NewID(), Name: name, CreatedAt: created}
	must(t, b.CreateWorkspace(t.Context(), w), "CreateWorkspace")
	return w
}

// newKey builds a key of workspace ws as the service would, without storing it.
func newKey(ws string, created time.Time) (*store.APIKey, string) {
	raw := store.GenerateKey()
	return &store.APIKey{
		ID:          store.NewID(),
		WorkspaceID: ws,
		Name:        "key " + raw[len(raw)-4:],
		Prefix:      raw[:len(store.KeyPrefix)+6],
		Hash:        store.HashKey(raw),
		Scopes:      []store.Scope{"read:accounts", "read:usage", "write:accounts"},
		RateLimit:   store.DefaultRateLimit,
		CreatedAt:   created,
	}, raw
}

func insertKey(t *testing.T, b store.Backend, ws string, created time.Time) *store.APIKey {
	t.Helper()
	k, _ := newKey(ws, created)
	must(t, b.CreateAPIKey(t.Context(), k), "CreateAPIKey")
	return k
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s is in %v, want UTC", what, got.Location())
	}
}

func wantTimePtr(t *testing.T, what string, got, want *time.Time) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, fmtTimePtr(got), fmtTimePtr(want))
	default:
		wantTime(t, what, *got, *want)
	}
}

func fmtTimePtr(p *time.Time) string {
	if p == nil {
		return "nil"
	}
	return p.String()
}

func wantKey(t *testing.T, got, want *store.APIKey) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil key, want %s", want.ID)
	}
	if got.ID != want.ID || got.WorkspaceID != want.WorkspaceID || got.Name != want.Name || got.Prefix != want.Prefix {
		t.Errorf("key = {id %q ws %q name %q prefix %q}, want {id %q ws %q name %q prefix %q}",
			got.ID, got.WorkspaceID, got.Name, got.Prefix, want.ID, want.WorkspaceID, want.Name, want.Prefix)
	}
	if string(got.Hash) != string(want.Hash) {
		t.Errorf("key hash = %x, want %x", got.Hash, want.Hash)
	}
	if !reflect.DeepEqual(got.Scopes, want.Scopes) {
		t.Errorf("key scopes = %q, want %q", got.Scopes, want.Scopes)
	}
	if got.RateLimit != want.RateLimit {
		t.Errorf("key rate limit = %v, want %v", got.RateLimit, want.RateLimit)
	}
	if !maps.Equal(got.Filter, want.Filter) || (len(want.Filter) == 0) != (got.Filter == nil) {
		t.Errorf("key filter = %#v, want %#v (nil for none)", got.Filter, want.Filter)
	}
	wantTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	wantTimePtr(t, "expires_at", got.ExpiresAt, want.ExpiresAt)
	wantTimePtr(t, "revoked_at", got.RevokedAt, want.RevokedAt)
	wantTimePtr(t, "last_used_at", got.LastUsedAt, want.LastUsedAt)
}

// hostile are strings that a careless backend would interpret as query
// syntax instead of storing them.
var hostile = []string{
	`{"$gt":""}`,
	`$where`,
	`{"$where":"sleep(1000)"}`,
	`'; DROP TABLE accounts; --`,
	`" OR "1"="1`,
	`$ne`,
	`a.b.c`,
	`%_\`,
	`NULL`,
	`0`,
	`1.5`,
	`{"$regex":".*"}`,
	`?1 ?2 $1 :id @p`,
}

// floats are values a number field must keep exactly.
var floats = []float64{1234.5678, 0, 0.30000000000000004, 1e-9, 1e15 + 0.5, 42, math.MaxFloat64, 123456789.125}

// sampleValue returns a valid stored value of field f; i varies it.
func sampleValue(f store.Field, i int) any {
	switch f.Type {
	case store.FieldNumber:
		return floats[i%len(floats)]
	case store.FieldCurrency:
		return []string{"EUR", "USD", "JPY"}[i%3]
	case store.FieldDate:
		return []string{"2025-06-30", "2024-02-29T13:45:00.123Z"}[i%2]
	case store.FieldEnum:
		return f.Enum[i%len(f.Enum)]
	case store.FieldRef:
		return store.NewID()
	case store.FieldEmail:
		return fmt.Sprintf("user%d@example.com", i)
	default:
		return fmt.Sprintf("%s %d: Zoë Ünïcødé 株式会社 🚀 \u202ertl\u202c \t tab", f.Name, i)
	}
}

// allFields returns a value for every field of r.
func allFields(r *store.Resource, i int) map[string]any {
	m := make(map[string]any, len(r.Fields))
	for j, f := range r.Fields {
		m[f.Name] = sampleValue(f, i+j)
	}
	return m
}

// minimalFields returns values for the required fields of r only.
func minimalFields(r *store.Resource, i int) map[string]any {
	m := map[string]any{}
	for _, f := range r.Fields {
		if f.Required {
			m[f.Name] = sampleValue(f, i)
		}
	}
	if len(r.OneOfRequired) > 0 {
		f, _ := r.Field(r.OneOfRequired[0])
		m[f.Name] = sampleValue(f, i)
	}
	return m
}

func newRecord(r *store.Resource, ws string, fields map[string]any, created time.Time) *store.Record {
	return &store.Record{
		Resource:    r,
		ID:          store.NewID(),
		WorkspaceID: ws,
		Fields:      fields,
		CreatedAt:   created,
		UpdatedAt:   created.Add(1500 * time.Millisecond),
		CreatedVia:  store.CreatedViaAPI,
		APIKeyID:    store.NewID(),
	}
}

func insertRecord(t *testing.T, b store.Backend, r *store.Resource, ws string, fields map[string]any, created time.Time) *store.Record {
	t.Helper()
	rec := newRecord(r, ws, fields, created)
	must(t, b.InsertRecord(t.Context(), rec), "InsertRecord")
	return rec
}

func wantRecord(t *testing.T, got, want *store.Record) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil record, want %s", want.ID)
	}
	if got.Resource != want.Resource {
		t.Errorf("record %s: resource = %v, want %s", want.ID, resourceName(got.Resource), want.Resource.Name)
	}
	if got.ID != want.ID || got.WorkspaceID != want.WorkspaceID || got.CreatedVia != want.CreatedVia || got.APIKeyID != want.APIKeyID {
		t.Errorf("record = {id %q ws %q via %q key %q}, want {id %q ws %q via %q key %q}",
			got.ID, got.WorkspaceID, got.CreatedVia, got.APIKeyID, want.ID, want.WorkspaceID, want.CreatedVia, want.APIKeyID)
	}
	wantTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	wantTime(t, "updated_at", got.UpdatedAt, want.UpdatedAt)
	wantFields(t, got.Fields, want.Fields)
}

// wantFields compares field maps exactly, value types included; a field
// absent from want must be absent from got, not present as nil.
func wantFields(t *testing.T, got, want map[string]any) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("field %q missing, want %#v", k, w)
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("field %q = %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %q = %#v", k, g)
		}
	}
}

func resourceName(r *store.Resource) string {
	if r == nil {
		return "<nil>"
	}
	return r.Name
}

func recordIDs(recs []*store.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

func eventIDs(evs []store.UsageEvent) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got ids\n\t%q\nwant\n\t%q", what, got, want)
	}
}
