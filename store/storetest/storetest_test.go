package storetest

import "testing"

func TestSkipMatching(t *testing.T) {
	s := &suite{skips: map[string]string{
		"Usage":                   "no aggregation",
		"Usage/CountUsage":        "no compound group",
		"APIKeys/TouchConcurrent": "lost updates",
	}, used: map[string]bool{}}
	cases := []struct {
		rel    string
		skip   bool
		reason string
	}{
		{"Usage/FindFilters", true, "no aggregation"},
		{"Usage/CountUsage", true, "no compound group"},
		{"APIKeys/TouchConcurrent", true, "lost updates"},
		{"APIKeys/TouchMonotonic", false, ""},
		{"UsageX/FindFilters", false, ""},
		{"Records/accounts/RoundTrip", false, ""},
	}
	for _, c := range cases {
		skip, reason := s.skipped(c.rel)
		if skip != c.skip || reason != c.reason {
			t.Errorf("skipped(%q) = %v, %q; want %v, %q", c.rel, skip, reason, c.skip, c.reason)
		}
	}
	for name := range s.skips {
		if !s.used[name] {
			t.Errorf("skip %q not marked as used", name)
		}
	}
}
