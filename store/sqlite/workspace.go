package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/hustack/hustack/store"
)

const workspaceColumns = `id, name, created_at, policy_max_lifetime_days, policy_require_expiry, policy_disable_unused_days`

func (db *DB) CreateWorkspace(ctx context.Context, w *store.Workspace) error {
	p := w.Policy
	_, err := db.stmt.createWorkspace.ExecContext(ctx, w.ID, w.Name, ms(w.CreatedAt),
		p.MaxLifetimeDays, p.RequireExpiry, p.DisableUnusedDays)
	return translate(err, "create workspace", "Workspace")
}

func (db *DB) UpdateWorkspacePolicy(ctx context.Context, id string, p store.KeyPolicy) error {
	return execOne(ctx, db.stmt.updatePolicy, "update key policy", "Workspace",
		p.MaxLifetimeDays, p.RequireExpiry, p.DisableUnusedDays, id)
}

func (db *DB) FindWorkspaceByID(ctx context.Context, id string) (*store.Workspace, error) {
	w, err := scanWorkspace(db.stmt.findWorkspace.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("Workspace")
	}
	if err != nil {
		return nil, translate(err, "find workspace", "Workspace")
	}
	return w, nil
}

func (db *DB) FindWorkspaces(ctx context.Context) ([]*store.Workspace, error) {
	rows, err := db.stmt.findWorkspaces.QueryContext(ctx)
	if err != nil {
		return nil, translate(err, "find workspaces", "Workspace")
	}
	defer rows.Close()
	var out []*store.Workspace
	for rows.Next() {
		w, err := scanWorkspace(rows)
		if err != nil {
			return nil, translate(err, "find workspaces", "Workspace")
		}
		out = append(out, w)
	}
	return out, translate(rows.Err(), "find workspaces", "Workspace")
}

type scanner interface{ Scan(dest ...any) error }

func scanWorkspace(s scanner) (*store.Workspace, error) {
	var w store.Workspace
	var created int64
	p := &w.Policy
	if err := s.Scan(&w.ID, &w.Name, &created, &p.MaxLifetimeDays, &p.RequireExpiry, &p.DisableUnusedDays); err != nil {
		return nil, err
	}
	w.CreatedAt = fromMS(created)
	return &w, nil
}
