package main

import (
	"context"
	"fmt"

	"github.com/hustack/hustack/store"
)

// workspaceJSON is a workspace as `--json` prints it.
type workspaceJSON struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	CreatedAt *string `json:"created_at,omitempty"`
}

func runWorkspaceCreate(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	name := fs.String("name", "", "workspace `NAME` (required)")
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
	if *asJSON {
		return writeJSON(c.stdout, workspaceJSON{ID: w.ID, Name: w.Name})
	}
	fmt.Fprintf(c.stdout, "Created workspace %q.\n\n  ID: %s\n\nCreate an API key for it with:\n  hustack key create --workspace %s --name NAME --scopes read:accounts,write:accounts\n",
		w.Name, w.ID, w.ID)
	return nil
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
