package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

// keyJSON is an API key as `--json` prints it: never the raw key or its hash.
type keyJSON struct {
	ID          string   `json:"id"`
	WorkspaceID string   `json:"workspace_id"`
	Name        string   `json:"name"`
	Prefix      string   `json:"prefix"`
	Scopes      []string `json:"scopes"`
	// Filter is the record filter of a vendor key; null for other keys.
	Filter     map[string]string `json:"filter"`
	RateLimit  string            `json:"rate_limit"`
	Status     string            `json:"status"`
	CreatedAt  *string           `json:"created_at"`
	ExpiresAt  *string           `json:"expires_at"`
	RevokedAt  *string           `json:"revoked_at"`
	LastUsedAt *string           `json:"last_used_at"`
	// Requests7d counts the key's requests over the last 7 days (key list
	// only).
	Requests7d *int64 `json:"requests_7d,omitempty"`
}

func newKeyJSON(k *store.APIKey, now time.Time) keyJSON {
	return keyJSON{
		ID:          k.ID,
		WorkspaceID: k.WorkspaceID,
		Name:        k.Name,
		Prefix:      k.Prefix,
		Scopes:      scopeNames(k.Scopes),
		Filter:      k.Filter,
		RateLimit:   k.RateLimit.String(),
		Status:      k.Status(now),
		CreatedAt:   jsonTime(&k.CreatedAt),
		ExpiresAt:   jsonTime(k.ExpiresAt),
		RevokedAt:   jsonTime(k.RevokedAt),
		LastUsedAt:  jsonTime(k.LastUsedAt),
	}
}

// createdKeyJSON is the answer of `key create --json`, the one place the raw
// key appears.
type createdKeyJSON struct {
	ID          string   `json:"id"`
	Key         string   `json:"key"`
	Prefix      string   `json:"prefix"`
	WorkspaceID string   `json:"workspace_id"`
	Name        string   `json:"name"`
	Scopes      []string `json:"scopes"`
	// Filter is the record filter of a vendor key; null for other keys.
	Filter    map[string]string `json:"filter"`
	ExpiresAt *string           `json:"expires_at"`
	RateLimit string            `json:"rate_limit"`
}

func newCreatedKeyJSON(k *store.APIKey, raw string) createdKeyJSON {
	return createdKeyJSON{
		ID:          k.ID,
		Key:         raw,
		Prefix:      k.Prefix,
		WorkspaceID: k.WorkspaceID,
		Name:        k.Name,
		Scopes:      scopeNames(k.Scopes),
		Filter:      k.Filter,
		ExpiresAt:   jsonTime(k.ExpiresAt),
		RateLimit:   k.RateLimit.String(),
	}
}

// printNewKey shows a new raw key, once, with what to do with it.
func printNewKey(w io.Writer, verb string, k *store.APIKey, raw string) {
	filter := "none (the whole workspace)"
	if len(k.Filter) > 0 {
		filter = store.FormatFilter(k.Filter)
	}
	fmt.Fprintf(w, `%s API key %q.

  %s

Copy the key now: it is shown only this once and cannot be recovered
(only its hash is stored). If it is lost, revoke it and create another.

  ID:          %s
  Workspace:   %s
  Scopes:      %s
  Filter:      %s
  Rate limit:  %s
  Expires:     %s

Use it as: Authorization: Bearer <key>
`, verb, k.Name, raw, k.ID, k.WorkspaceID, strings.Join(scopeNames(k.Scopes), ", "), filter, k.RateLimit, readableTime(k.ExpiresAt, "never"))
}

func runKeyCreate(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	workspace := fs.String("workspace", "", "workspace `ID` (required)")
	name := fs.String("name", "", "key `NAME`, such as the tool that uses it (required)")
	scopes := fs.String("scopes", "", "comma-separated `SCOPES`, such as read:accounts,write:notes (required)")
	expiresIn := fs.String("expires-in", "", "expire after `DURATION`, such as 720h or 30d")
	expiresAt := fs.String("expires-at", "", "expire at `TIME`, RFC 3339 such as 2030-01-02T15:04:05Z")
	rateLimit := fs.String("rate-limit", "", "rate `LIMIT` such as 600/m, 10/s or 5000/h (default HUSTACK_RATE_LIMIT, "+c.cfg.RateLimit.String()+")")
	filter := filterFlag{}
	fs.Var(&filter, "filter", "record filter `FIELD=VALUE` making a vendor key, such as source=\"Vendor XYZ\"; repeat it or separate pairs with commas")
	dataDirFlag(fs, &c.cfg)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := c.required("workspace", *workspace); err != nil {
		return err
	}
	if err := c.required("name", *name); err != nil {
		return err
	}
	sc, err := store.ParseScopes(*scopes)
	if err != nil {
		return err
	}
	in := store.KeyInput{WorkspaceID: strings.TrimSpace(*workspace), Name: *name, Scopes: sc, RateLimit: &c.cfg.RateLimit}
	if len(filter) > 0 {
		in.Filter = filter
	}
	switch {
	case *expiresIn != "" && *expiresAt != "":
		return usageErrorf("%s: use either --expires-in or --expires-at, not both", c.cmd.name)
	case *expiresIn != "":
		d, err := parseDuration(*expiresIn)
		if err != nil {
			return fmt.Errorf("--expires-in: %w", err)
		}
		t := time.Now().Add(d)
		in.ExpiresAt = &t
	case *expiresAt != "":
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(*expiresAt))
		if err != nil {
			return fmt.Errorf("--expires-at: %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", *expiresAt)
		}
		in.ExpiresAt = &t
	}
	if *rateLimit != "" {
		rl, err := store.ParseRateLimit(*rateLimit)
		if err != nil {
			return fmt.Errorf("--rate-limit: %q is not a rate limit; use N/s, N/m, N/h or N/<duration> such as 100/10s", *rateLimit)
		}
		in.RateLimit = &rl
	}

	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	k, raw, err := svc.CreateAPIKey(ctx, in)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(c.stdout, newCreatedKeyJSON(k, raw))
	}
	printNewKey(c.stdout, "Created", k, raw)
	return nil
}

func runKeyList(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	workspace := fs.String("workspace", "", "workspace `ID` (required)")
	dataDirFlag(fs, &c.cfg)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := c.required("workspace", *workspace); err != nil {
		return err
	}
	wsID := strings.TrimSpace(*workspace)
	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	if _, err := findWorkspace(ctx, svc, wsID); err != nil {
		return err
	}
	keys, err := svc.FindAPIKeys(ctx, wsID)
	if err != nil {
		return err
	}
	now := time.Now()
	// One grouped count gives every key's requests of the last 7 days.
	counts, err := svc.Scoped(operatorPrincipal(wsID)).CountUsage(ctx,
		store.UsageQuery{From: now.Add(-7 * 24 * time.Hour)}, store.GroupByKey)
	if err != nil {
		return err
	}
	requests := make(map[string]int64, len(counts))
	for _, n := range counts {
		requests[n.Group] = n.Count
	}
	if *asJSON {
		out := make([]keyJSON, len(keys))
		for i, k := range keys {
			out[i] = newKeyJSON(k, now)
			n := requests[k.ID]
			out[i].Requests7d = &n
		}
		return writeJSON(c.stdout, out)
	}
	if len(keys) == 0 {
		fmt.Fprintln(c.stdout, "No API keys in this workspace. Create one with: hustack key create --workspace "+wsID+" --name NAME --scopes SCOPES")
		return nil
	}
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tSCOPES\tFILTER\tSTATUS\tCREATED\tEXPIRES\tLAST USED\tREQUESTS 7D")
	for _, k := range keys {
		filter := "-"
		if len(k.Filter) > 0 {
			filter = store.FormatFilter(k.Filter)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s...\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n",
			k.ID, k.Name, k.Prefix, joinScopes(k.Scopes), filter, k.Status(now),
			readableTime(&k.CreatedAt, "-"), readableTime(k.ExpiresAt, "never"), readableTime(k.LastUsedAt, "never"), requests[k.ID])
	}
	return tw.Flush()
}

// rotatedKeyJSON is the answer of `key rotate --json`: the new key, with its
// raw value shown this once, and the old key with its new expiry.
type rotatedKeyJSON struct {
	createdKeyJSON
	OldKey *keyJSON `json:"old_key"` // null if it could not be read back
}

func runKeyRotate(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	expireOld := fs.String("expire-old-in", "7d", "how long the old key keeps working: `DURATION` such as 168h or 7d (at most 90d), or now")
	dataDirFlag(fs, &c.cfg)
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	overlap, err := store.ParseOverlap(*expireOld)
	if err != nil {
		return fmt.Errorf("--expire-old-in: %q is not \"now\" or a duration such as 168h or 7d, at most 90 days", *expireOld)
	}
	id := strings.TrimSpace(pos[0])
	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	k, raw, err := svc.RotateAPIKey(ctx, id, overlap)
	if store.ErrorCode(err) == store.ENOTFOUND {
		return store.Errorf(store.ENOTFOUND, "no API key with id %q; 'hustack key list --workspace ID' shows them", id)
	}
	if err != nil {
		return err
	}
	old, err := findKey(ctx, svc, k.WorkspaceID, id)
	if err != nil {
		// The new key exists: show it even so, since it cannot be shown again.
		fmt.Fprintf(c.stderr, "hustack: the old key could not be read back: %s\n", errorText(err))
	}
	now := time.Now()
	if *asJSON {
		out := rotatedKeyJSON{createdKeyJSON: newCreatedKeyJSON(k, raw)}
		if old != nil {
			o := newKeyJSON(old, now)
			out.OldKey = &o
		}
		return writeJSON(c.stdout, out)
	}
	printNewKey(c.stdout, "Rotated: new", k, raw)
	switch {
	case old == nil:
	case old.Status(now) == store.KeyExpired:
		fmt.Fprintf(c.stdout, "\nThe old key %s (%s...) has stopped working: it answers 410 expired_key.\n", old.ID, old.Prefix)
	default:
		fmt.Fprintf(c.stdout, "\nThe old key %s (%s...) keeps working until %s, then answers 410 expired_key.\n",
			old.ID, old.Prefix, readableTime(old.ExpiresAt, "-"))
	}
	return nil
}

// findKey returns a key of a workspace by id.
func findKey(ctx context.Context, svc *store.Service, workspaceID, id string) (*store.APIKey, error) {
	keys, err := svc.FindAPIKeys(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.ID == id {
			return k, nil
		}
	}
	return nil, store.Errorf(store.ENOTFOUND, "no API key with id %q", id)
}

// filterFlag collects --filter field=value pairs: the flag may be repeated
// and may hold several pairs separated by commas. A value may be quoted
// with double or single quotes, to hold commas or spaces: source="Vendor,
// Inc". The shell usually removes the quotes of source="Vendor XYZ" first,
// which gives the same pair.
type filterFlag map[string]string

func (f filterFlag) String() string { return store.FormatFilter(f) }

func (f filterFlag) Set(s string) error {
	pairs, err := parseFilter(s)
	if err != nil {
		return err
	}
	for k, v := range pairs {
		if old, ok := f[k]; ok && old != v {
			return fmt.Errorf("%s is given twice, as %q and %q", k, old, v)
		}
		f[k] = v
	}
	return nil
}

// parseFilter reads field=value pairs separated by commas.
func parseFilter(s string) (map[string]string, error) {
	out := map[string]string{}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return nil, fmt.Errorf("want FIELD=VALUE, such as source=\"Vendor XYZ\"")
	}
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, ",\"' ") {
			return nil, fmt.Errorf("%q is not FIELD=VALUE, such as source=\"Vendor XYZ\"", s)
		}
		var value string
		after = strings.TrimLeft(after, " ")
		if after != "" && (after[0] == '"' || after[0] == '\'') {
			q := after[0]
			end := strings.IndexByte(after[1:], q)
			if end < 0 {
				return nil, fmt.Errorf("the value of %s has no closing %c", name, q)
			}
			value, rest = after[1:1+end], strings.TrimSpace(after[2+end:])
			if rest != "" && rest[0] != ',' {
				return nil, fmt.Errorf("unexpected %q after the quoted value of %s", rest, name)
			}
		} else {
			value, rest, _ = strings.Cut(after, ",")
			value = strings.TrimSpace(value)
		}
		rest = strings.TrimSpace(strings.TrimPrefix(rest, ","))
		if value == "" {
			return nil, fmt.Errorf("the value of %s is empty", name)
		}
		if old, dup := out[name]; dup && old != value {
			return nil, fmt.Errorf("%s is given twice, as %q and %q", name, old, value)
		}
		out[name] = value
	}
	return out, nil
}

func runKeyRevoke(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	dataDirFlag(fs, &c.cfg)
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	id := strings.TrimSpace(pos[0])
	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	k, err := svc.RevokeAPIKey(ctx, id)
	if store.ErrorCode(err) == store.ENOTFOUND {
		return store.Errorf(store.ENOTFOUND, "no API key with id %q; 'hustack key list --workspace ID' shows them", id)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(c.stdout, newKeyJSON(k, time.Now()))
	}
	fmt.Fprintf(c.stdout, "Revoked API key %q (%s) of workspace %s at %s.\nRunning servers refuse it within 2 seconds.\n",
		k.Name, k.ID, k.WorkspaceID, readableTime(k.RevokedAt, "-"))
	return nil
}
