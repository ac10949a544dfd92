package client_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hustack/hustack/api/client"
	"github.com/hustack/hustack/store"
)

func TestKeyAdministration(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin, adminKey := e.client(t, e.wsA, "admin", store.AllScopes()...)
	_, otherKey := e.client(t, e.wsB, "other", store.AllScopes()...)

	exp := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Millisecond)
	rate := store.RateLimit{Count: 60, Period: time.Minute}
	k, raw, err := admin.CreateAPIKey(ctx, store.KeyInput{Name: "vendor", Scopes: []store.Scope{"read:leads", "write:leads"},
		Filter: map[string]string{"source": "Vendor XYZ"}, ExpiresAt: &exp, RateLimit: &rate})
	if err != nil {
		t.Fatal(err)
	}
	if !store.WellFormedKey(raw) || k.WorkspaceID != e.wsA.ID || k.Filter["source"] != "Vendor XYZ" ||
		k.RateLimit != rate || k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) {
		t.Fatalf("CreateAPIKey = %+v", k)
	}
	p, err := e.svc.Authenticate(ctx, raw)
	if err != nil || p.KeyID != k.ID || p.Filter["source"] != "Vendor XYZ" {
		t.Fatalf("the created key: %+v, %v", p, err)
	}

	keys, err := admin.FindAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ki := range keys {
		ids = append(ids, ki.ID)
	}
	if !slices.Equal(ids, []string{adminKey.ID, k.ID}) {
		t.Errorf("FindAPIKeys = %v, want the admin key then the new one", ids)
	}
	got, err := admin.FindAPIKeyByID(ctx, k.ID)
	if err != nil || got.ID != k.ID || got.Status != store.KeyActive || got.Prefix != k.Prefix {
		t.Errorf("FindAPIKeyByID = %+v, %v", got, err)
	}
	if _, err := admin.FindAPIKeyByID(ctx, otherKey.ID); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("FindAPIKeyByID of another workspace's key: %v, want not_found", err)
	}
	var re *client.ResponseError
	if _, err := admin.RevokeAPIKey(ctx, otherKey.ID); !errors.As(err, &re) || re.Status != 404 {
		t.Errorf("RevokeAPIKey of another workspace's key: %v, want a 404 ResponseError", err)
	}

	nk, newRaw, old, err := admin.RotateAPIKeyWithOld(ctx, k.ID, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if nk.ID == k.ID || newRaw == raw || !store.WellFormedKey(newRaw) || nk.Filter["source"] != "Vendor XYZ" || nk.Name != "vendor" {
		t.Errorf("rotated key = %+v", nk)
	}
	if old == nil || old.ID != k.ID || old.ExpiresAt == nil || old.ExpiresAt.After(time.Now().Add(2*time.Hour+time.Second)) ||
		old.ExpiresAt.Before(time.Now().Add(2*time.Hour-time.Minute)) {
		t.Errorf("old key after rotation = %+v", old)
	}
	if _, _, err := admin.RotateAPIKey(ctx, store.NewID(), 0); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("RotateAPIKey of an unknown key: %v", err)
	}

	revoked, err := admin.RevokeAPIKey(ctx, nk.ID)
	if err != nil || revoked.Status != store.KeyRevoked || revoked.RevokedAt == nil {
		t.Fatalf("RevokeAPIKey = %+v, %v", revoked, err)
	}
	if _, err := e.svc.Authenticate(ctx, newRaw); store.ErrorCode(err) != store.ErrorCode(store.ErrRevokedKey) {
		t.Errorf("the revoked key authenticates: %v", err)
	}

	pol, err := admin.KeyPolicy(ctx)
	if err != nil || pol != (store.KeyPolicy{}) {
		t.Errorf("KeyPolicy = %+v, %v", pol, err)
	}
	want := store.KeyPolicy{MaxLifetimeDays: 30, RequireExpiry: true}
	if pol, err = admin.UpdateKeyPolicy(ctx, want); err != nil || pol != want {
		t.Errorf("UpdateKeyPolicy = %+v, %v", pol, err)
	}
	if _, _, err := admin.CreateAPIKey(ctx, store.KeyInput{Name: "forever", Scopes: []store.Scope{"read:leads"}}); store.ErrorCode(err) != store.EBADREQUEST {
		t.Errorf("CreateAPIKey without expiry under the policy: %v, want bad_request", err)
	}
	if _, err := admin.UpdateKeyPolicy(ctx, store.KeyPolicy{MaxLifetimeDays: -1}); store.ErrorCode(err) != store.EBADREQUEST {
		t.Errorf("UpdateKeyPolicy with a negative lifetime: %v", err)
	}

	// A key without admin:keys is refused.
	reader, _ := e.client(t, e.wsA, "reader", store.ReadScope("leads"))
	if _, err := reader.FindAPIKeys(ctx); store.ErrorCode(err) != store.EFORBIDDEN {
		t.Errorf("FindAPIKeys without admin:keys: %v, want forbidden", err)
	}
}

func TestFormatOverlap(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{{0, "now"}, {7 * 24 * time.Hour, "7d"}, {36 * time.Hour, "36h0m0s"}, {90 * time.Minute, "1h30m0s"}} {
		got := client.FormatOverlap(tc.in)
		if got != tc.want {
			t.Errorf("FormatOverlap(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := store.ParseOverlap(got); err != nil || back != tc.in {
			t.Errorf("ParseOverlap(FormatOverlap(%v)) = %v, %v", tc.in, back, err)
		}
	}
}
