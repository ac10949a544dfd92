package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hustack/hustack/store"
)

// Key administration: the methods below need a key with the admin:keys
// scope, and see only the keys that key could have created itself.

// keyBody is the body of POST /keys.
type keyBody struct {
	Name      string            `json:"name"`
	Scopes    []store.Scope     `json:"scopes"`
	Filter    map[string]string `json:"filter,omitempty"`
	ExpiresAt *string           `json:"expires_at,omitempty"`
	RateLimit *string           `json:"rate_limit,omitempty"`
}

// createdKey is the answer of POST /keys and POST /keys/:id/rotate: the
// key's fields and, once, the raw key.
type createdKey struct {
	store.KeyInfo
	Key    string         `json:"key"`
	OldKey *store.KeyInfo `json:"old_key,omitempty"`
}

// FindAPIKeys lists the keys the calling key manages, oldest first.
func (c *Client) FindAPIKeys(ctx context.Context) ([]store.KeyInfo, error) {
	var out struct {
		Data []store.KeyInfo `json:"data"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/keys", nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Data == nil {
		out.Data = []store.KeyInfo{}
	}
	return out.Data, nil
}

// FindAPIKeyByID returns one key the calling key manages.
func (c *Client) FindAPIKeyByID(ctx context.Context, id string) (*store.KeyInfo, error) {
	var k store.KeyInfo
	if _, err := c.do(ctx, http.MethodGet, keyPath(id), nil, nil, &k); err != nil {
		return nil, err
	}
	if err := checkKey(http.MethodGet, keyPath(id), k.APIKey); err != nil {
		return nil, err
	}
	return &k, nil
}

// CreateAPIKey creates a key in the calling key's workspace (in.WorkspaceID
// is ignored) and returns it with the raw key, which the server shows only
// this once.
func (c *Client) CreateAPIKey(ctx context.Context, in store.KeyInput) (*store.APIKey, string, error) {
	body := keyBody{Name: in.Name, Scopes: in.Scopes, Filter: in.Filter}
	if body.Scopes == nil {
		body.Scopes = []store.Scope{} // the server answers with its own message
	}
	if in.ExpiresAt != nil {
		s := in.ExpiresAt.UTC().Format(time.RFC3339Nano)
		body.ExpiresAt = &s
	}
	if in.RateLimit != nil {
		s := in.RateLimit.String()
		body.RateLimit = &s
	}
	var out createdKey
	if _, err := c.do(ctx, http.MethodPost, "/keys", nil, body, &out); err != nil {
		return nil, "", err
	}
	if err := checkKey(http.MethodPost, "/keys", out.APIKey); err != nil {
		return nil, "", err
	}
	return out.APIKey, out.Key, nil
}

// RevokeAPIKey revokes a key the calling key manages (possibly itself).
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (*store.KeyInfo, error) {
	var k store.KeyInfo
	path := keyPath(id) + "/revoke"
	if _, err := c.do(ctx, http.MethodPost, path, nil, struct{}{}, &k); err != nil {
		return nil, err
	}
	if err := checkKey(http.MethodPost, path, k.APIKey); err != nil {
		return nil, err
	}
	return &k, nil
}

// RotateAPIKey replaces a key the calling key manages with a new one (same
// name, scopes, filter and limit) and lets the old one work for overlap
// more (0: it stops at once). It returns the new key and its raw value,
// shown only this once.
func (c *Client) RotateAPIKey(ctx context.Context, id string, overlap time.Duration) (*store.APIKey, string, error) {
	nk, raw, _, err := c.RotateAPIKeyWithOld(ctx, id, overlap)
	return nk, raw, err
}

// RotateAPIKeyWithOld is RotateAPIKey that also returns the old key as the
// server describes it after the rotation (its new expiry).
func (c *Client) RotateAPIKeyWithOld(ctx context.Context, id string, overlap time.Duration) (*store.APIKey, string, *store.KeyInfo, error) {
	path := keyPath(id) + "/rotate"
	var out createdKey
	if _, err := c.do(ctx, http.MethodPost, path, nil, map[string]string{"expire_old_in": FormatOverlap(overlap)}, &out); err != nil {
		return nil, "", nil, err
	}
	if err := checkKey(http.MethodPost, path, out.APIKey); err != nil {
		return nil, "", nil, err
	}
	return out.APIKey, out.Key, out.OldKey, nil
}

// FormatOverlap writes a rotation overlap the way the API reads
// expire_old_in: "now", whole days as "7d", anything else as a Go duration.
func FormatOverlap(d time.Duration) string {
	switch {
	case d <= 0:
		return "now"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// KeyPolicy returns the workspace's key policy.
func (c *Client) KeyPolicy(ctx context.Context) (store.KeyPolicy, error) {
	var p store.KeyPolicy
	_, err := c.do(ctx, http.MethodGet, "/key-policy", nil, nil, &p)
	return p, err
}

// UpdateKeyPolicy replaces the workspace's key policy.
func (c *Client) UpdateKeyPolicy(ctx context.Context, p store.KeyPolicy) (store.KeyPolicy, error) {
	var out store.KeyPolicy
	_, err := c.do(ctx, http.MethodPut, "/key-policy", nil, p, &out)
	return out, err
}

func keyPath(id string) string { return "/keys/" + url.PathEscape(id) }

// checkKey refuses a successful answer that holds no key.
func checkKey(method, path string, k *store.APIKey) error {
	if k == nil || k.ID == "" {
		return fmt.Errorf("hustack client: %s %s: the answer holds no API key", method, path)
	}
	return nil
}
