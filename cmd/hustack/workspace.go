package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

// workspaceJSON is a workspace as `--json` prints it.
type workspaceJSON struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	CreatedAt *string `json:"created_at,omitempty"`
	// AdminKey is the first admin key, made by `workspace create
	// --with-admin-key`; its raw value is shown only this once.
	AdminKey *createdKeyJSON `json:"admin_key,omitempty"`
}

// adminKeyName names the key `workspace create --with-admin-key` makes.
const adminKeyName = "admin"

// adminKeyScopes are the scopes of a workspace's first admin key: every
// scope there is, so that it can manage keys (admin:keys), read usage
// (read:usage) and read and write every resource, and so grant any of them
// to the keys it creates.
func adminKeyScopes() []store.Scope { return store.AllScopes() }

func runWorkspaceCreate(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	name := fs.String("name", "", "workspace `NAME` (required)")
	withAdmin := fs.Bool("with-admin-key", false, "also create the workspace's first admin key (every scope, admin:keys included), shown only once")
	dataDirFlag(fs, &c.cfg)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := c.required("name", *name); err != nil {
		return err
	}
	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	w, err := svc.CreateWorkspace(ctx, *name)
	if err != nil {
		return err
	}
	var admin *store.APIKey
	var raw string
	if *withAdmin {
		admin, raw, err = svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: w.ID, Name: adminKeyName,
			Scopes: adminKeyScopes(), RateLimit: &c.cfg.RateLimit})
		if err != nil {
			return fmt.Errorf("workspace %s was created, but not its admin key: %w; "+
				"create one with: hustack key create --workspace %s --name admin --scopes %s",
				w.ID, err, w.ID, joinScopes(adminKeyScopes()))
		}
	}
	if *asJSON {
		out := workspaceJSON{ID: w.ID, Name: w.Name}
		if admin != nil {
			k := newCreatedKeyJSON(admin, raw)
			out.AdminKey = &k
		}
		return writeJSON(c.stdout, out)
	}
	fmt.Fprintf(c.stdout, "Created workspace %q.\n\n  ID: %s\n\n", w.Name, w.ID)
	if admin != nil {
		printNewKey(c.stdout, "Created the first admin", admin, raw)
		fmt.Fprintf(c.stdout, "\nWith it, sign in to the console at /console or call /api/v1/keys to manage the workspace's keys.\n")
		return nil
	}
	fmt.Fprintf(c.stdout, "Create an API key for it with:\n  hustack key create --workspace %s --name NAME --scopes read:accounts,write:accounts\n", w.ID)
	return nil
}

// policyJSON is the answer of `workspace policy --json`: the workspace's id
// and its key policy, with the fields of GET /api/v1/key-policy.
type policyJSON struct {
	WorkspaceID string `json:"workspace_id"`
	store.KeyPolicy
}

func runWorkspacePolicy(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	workspace := fs.String("workspace", "", "workspace `ID` (required)")
	maxLifetime := fs.String("max-key-lifetime", "", "new keys must expire within `DAYS`, such as 366d; 0: no maximum")
	requireExpiry := fs.Bool("require-expiry", false, "refuse new keys without an expiry (--require-expiry=false to stop)")
	disableUnused := fs.String("disable-unused-after", "", "revoke keys unused for `DAYS`, such as 90d; 0: never")
	dataDirFlag(fs, &c.cfg)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := c.required("workspace", *workspace); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var lifetime, unused int
	var err error
	if set["max-key-lifetime"] {
		if lifetime, err = parseDays(*maxLifetime); err != nil {
			return fmt.Errorf("--max-key-lifetime: %w", err)
		}
	}
	if set["disable-unused-after"] {
		if unused, err = parseDays(*disableUnused); err != nil {
			return fmt.Errorf("--disable-unused-after: %w", err)
		}
	}
	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	w, err := findWorkspace(ctx, svc, strings.TrimSpace(*workspace))
	if err != nil {
		return err
	}
	changed := set["max-key-lifetime"] || set["require-expiry"] || set["disable-unused-after"]
	if changed {
		p := w.Policy
		if set["max-key-lifetime"] {
			p.MaxLifetimeDays = lifetime
		}
		if set["require-expiry"] {
			p.RequireExpiry = *requireExpiry
		}
		if set["disable-unused-after"] {
			p.DisableUnusedDays = unused
		}
		if w, err = svc.SetKeyPolicy(ctx, w.ID, p); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(c.stdout, policyJSON{WorkspaceID: w.ID, KeyPolicy: w.Policy})
	}
	heading := "Key policy"
	if changed {
		heading = "Updated key policy"
	}
	p := w.Policy
	lifetimeText, unusedText := "none", "never"
	if p.MaxLifetimeDays > 0 {
		lifetimeText = fmt.Sprintf("%d days", p.MaxLifetimeDays)
	}
	if p.DisableUnusedDays > 0 {
		unusedText = fmt.Sprintf("after %d days without a request", p.DisableUnusedDays)
	}
	fmt.Fprintf(c.stdout, "%s of workspace %q (%s):\n\n  Maximum key lifetime:  %s\n  Expiry required:       %s\n  Revoke unused keys:    %s\n",
		heading, w.Name, w.ID, lifetimeText, policyYesNo(p.RequireExpiry), unusedText)
	if changed {
		fmt.Fprintln(c.stdout, "\nThe rules apply to keys created from now on; unused keys are revoked by the worker's hourly task.")
	}
	return nil
}

func policyYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// parseDays reads a whole number of days: "366d", "0", or a Go duration of
// whole days such as "8784h".
func parseDays(s string) (int, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a number of days; use such as 366d, or 0 to turn the rule off", s)
	if s == "0" {
		return 0, nil
	}
	d, err := store.ParseDuration(s)
	if err != nil || d < 0 || d%(24*time.Hour) != 0 {
		return 0, bad
	}
	return int(d / (24 * time.Hour)), nil
}

func runWorkspaceList(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	dataDirFlag(fs, &c.cfg)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	ws, err := svc.FindWorkspaces(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]workspaceJSON, len(ws))
		for i, w := range ws {
			out[i] = workspaceJSON{ID: w.ID, Name: w.Name, CreatedAt: jsonTime(&w.CreatedAt)}
		}
		return writeJSON(c.stdout, out)
	}
	if len(ws) == 0 {
		fmt.Fprintln(c.stdout, "No workspaces yet. Create one with: hustack workspace create --name NAME")
		return nil
	}
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED")
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", w.ID, w.Name, readableTime(&w.CreatedAt, "-"))
	}
	return tw.Flush()
}

// findWorkspace checks that a workspace exists, with a message naming the id.
func findWorkspace(ctx context.Context, svc *store.Service, id string) (*store.Workspace, error) {
	w, err := svc.FindWorkspaceByID(ctx, id)
	if store.ErrorCode(err) == store.ENOTFOUND {
		return nil, store.Errorf(store.ENOTFOUND, "no workspace with id %q; 'hustack workspace list' shows them", id)
	}
	return w, err
}
