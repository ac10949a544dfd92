package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Scoped runs operations on behalf of one principal. Every method starts with
// the scope check of its operation (from the operation table) and passes the
// principal's workspace id to the backend; this is the one place where tenant
// isolation and permissions are enforced, for every transport.
type Scoped struct {
	s *Service
	p Principal
}

// Scoped returns the operations available to principal p.
func (s *Service) Scoped(p Principal) *Scoped { return &Scoped{s: s, p: p} }

// Principal returns the caller.
func (sc *Scoped) Principal() Principal { return sc.p }

// authorize checks that the caller may run op.
func (sc *Scoped) authorize(op Operation) error {
	if !sc.p.Authenticated() {
		return ErrMissingKey
	}
	if op.Scope != "" && !sc.p.Has(op.Scope) {
		return ErrMissingScope
	}
	return nil
}

// Pagination limits.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Pagination describes the page returned. NextCursor, when not null, fetches
// the next page by keyset (record lists only).
type Pagination struct {
	Limit      int     `json:"limit"`
	Offset     int     `json:"offset"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
}

// Page is one page of a list.
type Page[T any] struct {
	Data       []T        `json:"data"`
	Pagination Pagination `json:"pagination"`
}

// pageOf trims a result fetched with limit+1 rows to a page.
func pageOf[T any](rows []T, lp ListParams) Page[T] {
	more := len(rows) > lp.Limit
	if more {
		rows = rows[:lp.Limit]
	}
	if rows == nil {
		rows = []T{}
	}
	return Page[T]{Data: rows, Pagination: Pagination{Limit: lp.Limit, Offset: lp.Offset, HasMore: more}}
}

// FindRecords lists records of resource r: newest first unless lp says
// otherwise, filtered as lp says.
func (sc *Scoped) FindRecords(ctx context.Context, r *Resource, lp ListParams) (Page[*Record], error) {
	if err := sc.authorize(operationFor(ActionList, r)); err != nil {
		return Page[*Record]{}, err
	}
	q, lp, err := lp.recordQuery(r)
	if err != nil {
		return Page[*Record]{}, err
	}
	kf, err := sc.keyFilters(r)
	if err != nil {
		return Page[*Record]{}, err
	}
	// A client filter on a field the key's filter fixes is either redundant
	// or matches nothing; it is settled here so that no backend ever gets
	// two conditions on one field (whose meaning a document database may
	// reduce to the last one).
	for _, f := range kf {
		for i := 0; i < len(q.Filters); i++ {
			if q.Filters[i].Field != f.Field {
				continue
			}
			if q.Filters[i].Value != f.Value {
				return pageOf([]*Record{}, lp), nil
			}
			q.Filters = append(q.Filters[:i], q.Filters[i+1:]...)
			i--
		}
	}
	q.Filters = append(q.Filters, kf...)
	rows, err := sc.s.backend.FindRecords(ctx, r, sc.p.WorkspaceID, q)
	if err != nil {
		return Page[*Record]{}, err
	}
	page := pageOf(rows, lp)
	if page.Pagination.HasMore {
		last := page.Data[len(page.Data)-1]
		c := encodeCursor(q, last)
		page.Pagination.NextCursor = &c
	}
	return page, nil
}

// FindRecordByID returns one record. A record of another workspace is
// not_found, exactly like one that does not exist.
func (sc *Scoped) FindRecordByID(ctx context.Context, r *Resource, id string) (*Record, error) {
	if err := sc.authorize(operationFor(ActionGet, r)); err != nil {
		return nil, err
	}
	if !ValidID(id) {
		return nil, notFound(capitalize(r.Singular))
	}
	return sc.find(ctx, r, id)
}

// find returns a live record the principal may see, or not_found.
func (sc *Scoped) find(ctx context.Context, r *Resource, id string) (*Record, error) {
	rec, err := sc.s.backend.FindRecordByID(ctx, r, sc.p.WorkspaceID, id)
	if ErrorCode(err) == ENOTFOUND || (err == nil && !sc.sees(rec)) {
		return nil, notFound(capitalize(r.Singular))
	}
	return rec, err
}

// CreateRecord validates input and creates a record of resource r, tagged
// with the calling key.
func (sc *Scoped) CreateRecord(ctx context.Context, r *Resource, input map[string]any) (*Record, error) {
	if err := sc.authorize(operationFor(ActionCreate, r)); err != nil {
		return nil, err
	}
	return sc.create(ctx, r, input)
}

func (sc *Scoped) create(ctx context.Context, r *Resource, input map[string]any) (*Record, error) {
	input, err := sc.stamp(r, input)
	if err != nil {
		return nil, err
	}
	fields, err := r.ValidateCreate(input)
	if err != nil {
		return nil, err
	}
	if err := sc.checkRefs(ctx, r, fields); err != nil {
		return nil, err
	}
	now := sc.s.Now()
	rec := &Record{
		Resource:    r,
		ID:          NewID(),
		WorkspaceID: sc.p.WorkspaceID,
		Fields:      fields,
		CreatedAt:   now,
		UpdatedAt:   now,
		CreatedVia:  CreatedViaAPI,
		APIKeyID:    sc.p.KeyID,
	}
	if err := sc.s.backend.InsertRecord(ctx, rec); err != nil {
		return nil, externalIDConflict(r, fields, err)
	}
	return rec, nil
}

// externalIDConflict explains a unique violation on write, which can only be
// the external id.
func externalIDConflict(r *Resource, fields map[string]any, err error) error {
	if ErrorCode(err) != ECONFLICT || errors.Is(err, ErrStale) || fields[ExternalIDField] == nil {
		return err
	}
	return &Error{Code: ECONFLICT, Field: ExternalIDField,
		Message: fmt.Sprintf("%s: another %s already has external_id %q.", ExternalIDField, r.Singular, fields[ExternalIDField])}
}

// checkRefs makes sure every reference names a record of the right resource
// in the caller's workspace. The message is the same whether the id does not
// exist or belongs to another workspace.
func (sc *Scoped) checkRefs(ctx context.Context, r *Resource, fields map[string]any) error {
	for _, f := range r.Fields {
		id, ok := fields[f.Name].(string)
		if f.Type != FieldRef || !ok {
			continue
		}
		target, _ := ResourceByName(f.Ref)
		_, err := sc.s.backend.FindRecordByID(ctx, target, sc.p.WorkspaceID, id)
		if ErrorCode(err) == ENOTFOUND {
			return FieldError(f.Name, "no %s with id %q in this workspace.", target.Singular, id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Me describes the calling key, for the whoami tool and GET /me.
type Me struct {
	Workspace Workspace `json:"workspace"`
	Key       MeKey     `json:"key"`
}

// MeKey is the calling key as it describes itself (never the raw key).
type MeKey struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Prefix    string            `json:"prefix"`
	Scopes    []Scope           `json:"scopes"`
	Filter    map[string]string `json:"filter"`
	RateLimit RateLimit         `json:"rate_limit"`
	CreatedAt time.Time         `json:"created_at"`
	ExpiresAt *time.Time        `json:"expires_at"`
}

// Whoami describes the caller.
func (sc *Scoped) Whoami(ctx context.Context) (*Me, error) {
	if err := sc.authorize(operationFor(ActionWhoami, nil)); err != nil {
		return nil, err
	}
	w, err := sc.s.backend.FindWorkspaceByID(ctx, sc.p.WorkspaceID)
	if err != nil {
		return nil, err
	}
	p := sc.p
	return &Me{
		Workspace: *w,
		Key: MeKey{ID: p.KeyID, Name: p.KeyName, Prefix: p.KeyPrefix, Scopes: p.Scopes, Filter: p.Filter,
			RateLimit: p.RateLimit, CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt},
	}, nil
}

func (q UsageQuery) validate() error {
	if q.KeyID != "" && !ValidID(q.KeyID) {
		return FieldError("key_id", "is not a valid id.")
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return FieldError("from", "must be before to.")
	}
	if q.Status != 0 && (q.Status < 100 || q.Status > 599) {
		return FieldError("status", "must be an HTTP status code.")
	}
	return nil
}

// CountUsage summarises the workspace's usage grouped by day, key, route or status.
func (sc *Scoped) CountUsage(ctx context.Context, q UsageQuery, by UsageGroup) ([]UsageCount, error) {
	if err := sc.authorize(operationFor(ActionUsageCounts, nil)); err != nil {
		return nil, err
	}
	switch by {
	case GroupByDay, GroupByKey, GroupByRoute, GroupByStatus:
	default:
		return nil, FieldError("group_by", "must be one of day, key, route, status.")
	}
	if err := q.validate(); err != nil {
		return nil, err
	}
	counts, err := sc.s.backend.CountUsage(ctx, sc.p.WorkspaceID, q, by)
	if counts == nil && err == nil {
		counts = []UsageCount{}
	}
	return counts, err
}

// FindUsageLogs lists the workspace's usage log entries, newest first.
func (sc *Scoped) FindUsageLogs(ctx context.Context, q UsageQuery, lp ListParams) (Page[UsageEvent], error) {
	if err := sc.authorize(operationFor(ActionUsageLogs, nil)); err != nil {
		return Page[UsageEvent]{}, err
	}
	lp, err := lp.normalize()
	if err != nil {
		return Page[UsageEvent]{}, err
	}
	if err := q.validate(); err != nil {
		return Page[UsageEvent]{}, err
	}
	q.Limit, q.Offset = lp.Limit+1, lp.Offset
	rows, err := sc.s.backend.FindUsageEvents(ctx, sc.p.WorkspaceID, q)
	if err != nil {
		return Page[UsageEvent]{}, err
	}
	return pageOf(rows, lp), nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return fmt.Sprintf("%c%s", s[0]-'a'+'A', s[1:])
}
