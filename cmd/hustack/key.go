package main

import (
	"context"
	"fmt"
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
	RateLimit   string   `json:"rate_limit"`
	Status      string   `json:"status"`
	CreatedAt   *string  `json:"created_at"`
	ExpiresAt   *string  `json:"expires_at"`
	RevokedAt   *string  `json:"revoked_at"`
	LastUsedAt  *string  `json:"last_used_at"`
}

func newKeyJSON(k *store.APIKey, now time.Time) keyJSON {
	return keyJSON{
		ID:          k.ID,
		WorkspaceID: k.WorkspaceID,
		Name:        k.Name,
		Prefix:      k.Prefix,
		Scopes:      scopeNames(k.Scopes),
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
	ExpiresAt   *string  `json:"expires_at"`
	RateLimit   string   `json:"rate_limit"`
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
		return writeJSON(c.stdout, createdKeyJSON{
			ID:          k.ID,
			Key:         raw,
			Prefix:      k.Prefix,
			WorkspaceID: k.WorkspaceID,
			Name:        k.Name,
			Scopes:      scopeNames(k.Scopes),
			ExpiresAt:   jsonTime(k.ExpiresAt),
			RateLimit:   k.RateLimit.String(),
		})
	}
	fmt.Fprintf(c.stdout, `Created API key %q.

  %s

Copy the key now: it is shown only this once and cannot be recovered
(only its hash is stored). If it is lost, revoke it and create another.

  ID:          %s
  Workspace:   %s
  Scopes:      %s
  Rate limit:  %s
  Expires:     %s

Use it as: Authorization: Bearer <key>
`, k.Name, raw, k.ID, k.WorkspaceID, strings.Join(scopeNames(k.Scopes), ", "), k.RateLimit, readableTime(k.ExpiresAt, "never"))
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
	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	if _, err := findWorkspace(ctx, svc, strings.TrimSpace(*workspace)); err != nil {
		return err
	}
	keys, err := svc.FindAPIKeys(ctx, strings.TrimSpace(*workspace))
	if err != nil {
		return err
	}
	now := time.Now()
	if *asJSON {
		out := make([]keyJSON, len(keys))
		for i, k := range keys {
			out[i] = newKeyJSON(k, now)
		}
		return writeJSON(c.stdout, out)
	}
	if len(keys) == 0 {
		fmt.Fprintln(c.stdout, "No API keys in this workspace. Create one with: hustack key create --workspace "+strings.TrimSpace(*workspace)+" --name NAME --scopes SCOPES")
		return nil
	}
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tSCOPES\tSTATUS\tCREATED\tEXPIRES\tLAST USED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s...\t%s\t%s\t%s\t%s\t%s\n",
			k.ID, k.Name, k.Prefix, joinScopes(k.Scopes), k.Status(now),
			readableTime(&k.CreatedAt, "-"), readableTime(k.ExpiresAt, "never"), readableTime(k.LastUsedAt, "never"))
	}
	return tw.Flush()
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
