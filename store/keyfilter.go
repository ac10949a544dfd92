package store

import (
	"maps"
	"slices"
)

// A vendor key carries a record filter (Principal.Filter). Scoped applies it
// to every record operation, here and nowhere else: lists and gets see only
// matching records, creates are stamped with the filter's values, and
// updates cannot move a record out of the filter.

// keyFilters returns the principal's filter as list conditions for r.
func (sc *Scoped) keyFilters(r *Resource) ([]FieldFilter, error) {
	if len(sc.p.Filter) == 0 {
		return nil, nil
	}
	out := make([]FieldFilter, 0, len(sc.p.Filter))
	for _, name := range sortedKeys(sc.p.Filter) {
		if _, ok := r.Field(name); !ok {
			// Key creation refuses such scopes; stay closed if one slips by.
			return nil, ErrMissingScope
		}
		out = append(out, FieldFilter{Field: name, Value: sc.p.Filter[name]})
	}
	return out, nil
}

// sees reports whether the principal's filter lets it see rec.
func (sc *Scoped) sees(rec *Record) bool {
	for name, v := range sc.p.Filter {
		if got, _ := rec.Fields[name].(string); got != v {
			return false
		}
	}
	return true
}

// stamp returns input with the principal's filter values set, refusing a
// conflicting value.
func (sc *Scoped) stamp(r *Resource, input map[string]any) (map[string]any, error) {
	if len(sc.p.Filter) == 0 || input == nil {
		return input, nil
	}
	out := maps.Clone(input)
	for _, name := range sortedKeys(sc.p.Filter) {
		want := sc.p.Filter[name]
		f, ok := r.Field(name)
		if !ok {
			return nil, ErrMissingScope
		}
		if given, present := input[name]; present && given != nil {
			v, err := f.normalize(given)
			if err != nil {
				return nil, err
			}
			if v != nil && v != want {
				return nil, FieldError(name, "is fixed to %q for this API key.", want)
			}
		}
		out[name] = want
	}
	return out, nil
}

// checkPatch refuses a partial update that would move a record out of the
// principal's filter.
func (sc *Scoped) checkPatch(set map[string]any, clear []string) error {
	for name, want := range sc.p.Filter {
		if v, ok := set[name]; ok && v != want {
			return FieldError(name, "is fixed to %q for this API key.", want)
		}
		if slices.Contains(clear, name) {
			return FieldError(name, "is fixed to %q for this API key and cannot be cleared.", want)
		}
	}
	return nil
}
