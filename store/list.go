package store

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// ListParams selects a page of a list. Transports apply DefaultLimit when the
// client gives no limit. The fields after Offset apply to record lists only.
type ListParams struct {
	Limit  int
	Offset int

	// Sort is created_at, -created_at (the default), updated_at or -updated_at.
	Sort string
	// Cursor is pagination.next_cursor of the previous page. It carries its
	// sort order; it cannot be combined with an offset.
	Cursor string

	CreatedAfter, CreatedBefore time.Time
	UpdatedAfter, UpdatedBefore time.Time
	// Filters are exact-match conditions on Filterable fields, by field name,
	// with the values as the client wrote them.
	Filters map[string]string
	// Q matches the resource's name or title fields, case-insensitively.
	Q              string
	IncludeDeleted bool
}

// Sort orders accepted by ListParams.Sort.
var SortOrders = []string{"-created_at", "created_at", "-updated_at", "updated_at"}

const maxQ = 200

func (lp ListParams) normalize() (ListParams, error) {
	if lp.Limit < 1 {
		return lp, FieldError("limit", "must be an integer between 1 and %d.", MaxLimit)
	}
	if lp.Limit > MaxLimit {
		lp.Limit = MaxLimit
	}
	if lp.Offset < 0 {
		return lp, FieldError("offset", "must be an integer >= 0.")
	}
	return lp, nil
}

// recordQuery validates lp for resource r and turns it into a backend query
// that fetches one row more than the page, to tell whether there is more.
func (lp ListParams) recordQuery(r *Resource) (RecordQuery, ListParams, error) {
	lp, err := lp.normalize()
	if err != nil {
		return RecordQuery{}, lp, err
	}
	q := RecordQuery{Limit: lp.Limit + 1, Offset: lp.Offset, IncludeDeleted: lp.IncludeDeleted,
		CreatedAfter: lp.CreatedAfter, CreatedBefore: lp.CreatedBefore,
		UpdatedAfter: lp.UpdatedAfter, UpdatedBefore: lp.UpdatedBefore}
	sortOrder := lp.Sort
	if lp.Cursor != "" {
		c, err := decodeCursor(lp.Cursor)
		if err != nil {
			return q, lp, err
		}
		if sortOrder != "" && sortOrder != c.Sort {
			return q, lp, FieldError("sort", "must be the cursor's sort order %q (or left out).", c.Sort)
		}
		if lp.Offset != 0 {
			return q, lp, FieldError("offset", "cannot be combined with cursor.")
		}
		sortOrder = c.Sort
		q.After = &Position{Time: time.UnixMilli(c.Time).UTC(), ID: c.ID}
	}
	switch sortOrder {
	case "", "-created_at":
		q.Sort = SortCreatedAt
	case "created_at":
		q.Sort, q.Ascending = SortCreatedAt, true
	case "-updated_at":
		q.Sort = SortUpdatedAt
	case "updated_at":
		q.Sort, q.Ascending = SortUpdatedAt, true
	default:
		return q, lp, FieldError("sort", "must be one of %s.", strings.Join(SortOrders, ", "))
	}
	for _, b := range []struct {
		name        string
		after, then time.Time
	}{
		{"created_after", lp.CreatedAfter, lp.CreatedBefore},
		{"updated_after", lp.UpdatedAfter, lp.UpdatedBefore},
	} {
		if !b.after.IsZero() && !b.then.IsZero() && !b.after.Before(b.then) {
			return q, lp, FieldError(b.name, "must be before %s.", strings.Replace(b.name, "after", "before", 1))
		}
	}
	for _, name := range sortedKeys(lp.Filters) {
		f, ok := r.Field(name)
		if !ok || !f.Filterable {
			return q, lp, FieldError(name, "is not a filter of %s (filters: %s).", r.Name, strings.Join(r.FilterNames(), ", "))
		}
		v, err := f.normalize(lp.Filters[name])
		if err != nil {
			return q, lp, err
		}
		if v == nil {
			return q, lp, FieldError(name, "filter value must not be empty.")
		}
		q.Filters = append(q.Filters, FieldFilter{Field: name, Value: v})
	}
	if lp.Q != "" {
		text := strings.TrimSpace(lp.Q)
		if len([]rune(text)) > maxQ || strings.ContainsRune(text, 0) {
			return q, lp, FieldError("q", "must be at most %d characters of text.", maxQ)
		}
		q.Search = text
	}
	return q, lp, nil
}

// FilterNames lists the fields a list of r can be filtered by.
func (r *Resource) FilterNames() []string {
	var out []string
	for _, f := range r.Fields {
		if f.Filterable {
			out = append(out, f.Name)
		}
	}
	return out
}

// cursor is the decoded form of an opaque pagination cursor.
type cursor struct {
	Sort string `json:"s"`
	Time int64  `json:"t"`
	ID   string `json:"i"`
}

func encodeCursor(q RecordQuery, last *Record) string {
	c := cursor{Sort: q.Sort, ID: last.ID, Time: last.CreatedAt.UnixMilli()}
	if q.Sort == SortUpdatedAt {
		c.Time = last.UpdatedAt.UnixMilli()
	}
	if !q.Ascending {
		c.Sort = "-" + c.Sort
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	bad := FieldError("cursor", "is not a cursor returned by this API.")
	if len(s) > 512 {
		return cursor{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, bad
	}
	var c cursor
	if json.Unmarshal(b, &c) != nil || !ValidID(c.ID) || c.Time <= 0 {
		return cursor{}, bad
	}
	switch c.Sort {
	case "-created_at", "created_at", "-updated_at", "updated_at":
		return c, nil
	}
	return cursor{}, bad
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
