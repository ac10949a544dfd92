package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

// usageJSON is the answer of `usage --json`: the body of GET /api/v1/usage
// with the window it covers.
type usageJSON struct {
	WorkspaceID string             `json:"workspace_id"`
	KeyID       *string            `json:"key_id"`
	GroupBy     string             `json:"group_by"`
	From        string             `json:"from"`
	To          string             `json:"to"`
	Data        []store.UsageCount `json:"data"`
}

// operatorPrincipal is the operator reading a workspace's usage from the
// command line: a principal of that workspace with the read:usage scope
// only, so that the read goes through store.Scoped like the API's.
func operatorPrincipal(workspaceID string) store.Principal {
	return store.Principal{
		WorkspaceID: workspaceID,
		KeyID:       "operator",
		KeyName:     "hustack usage",
		Scopes:      []store.Scope{store.ScopeUsage},
	}
}

func runUsage(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	asJSON := jsonFlag(fs)
	workspace := fs.String("workspace", "", "workspace `ID` (required)")
	keyID := fs.String("key", "", "count only the requests of API key `KEY_ID`")
	since := fs.String("since", "24h", "count the requests of the last `DURATION`, such as 1h, 24h or 30d")
	by := fs.String("by", string(store.GroupByDay), "group by `GROUP`: day, key, route or status")
	dataDirFlag(fs, &c.cfg)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := c.required("workspace", *workspace); err != nil {
		return err
	}
	group := store.UsageGroup(strings.ToLower(strings.TrimSpace(*by)))
	switch group {
	case store.GroupByDay, store.GroupByKey, store.GroupByRoute, store.GroupByStatus:
	default:
		return usageErrorf("usage: --by %q is not a grouping; use day, key, route or status", *by)
	}
	window, err := parseDuration(*since)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	wsID, kID := strings.TrimSpace(*workspace), strings.TrimSpace(*keyID)
	if kID != "" && !store.ValidID(kID) {
		return usageErrorf("usage: --key %q is not a key id; 'hustack key list --workspace %s' shows them", kID, wsID)
	}

	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	if _, err := findWorkspace(ctx, svc, wsID); err != nil {
		return err
	}
	to := svc.Now().Add(time.Millisecond) // To is exclusive: include this millisecond
	from := to.Add(-window)
	q := store.UsageQuery{KeyID: kID, From: from, To: to}
	counts, err := svc.Scoped(operatorPrincipal(wsID)).CountUsage(ctx, q, group)
	if err != nil {
		return err
	}

	if *asJSON {
		out := usageJSON{
			WorkspaceID: wsID, GroupBy: string(group), Data: counts,
			From: from.UTC().Format(store.TimeFormat), To: to.UTC().Format(store.TimeFormat),
		}
		if kID != "" {
			out.KeyID = &kID
		}
		return writeJSON(c.stdout, out)
	}

	scope := "all keys"
	if kID != "" {
		scope = "key " + kID
	}
	fmt.Fprintf(c.stdout, "Requests of workspace %s, %s, from %s to %s, by %s:\n\n",
		wsID, scope, readableTime(&from, "-"), readableTime(&to, "-"), group)
	if len(counts) == 0 {
		fmt.Fprintln(c.stdout, "No requests recorded in this window.")
		return nil
	}
	names := map[string]string{}
	if group == store.GroupByKey {
		keys, err := svc.FindAPIKeys(ctx, wsID)
		if err != nil {
			return err
		}
		for _, k := range keys {
			names[k.ID] = k.Name
		}
	}
	tw := newTable(c.stdout)
	header := strings.ToUpper(string(group))
	if group == store.GroupByKey {
		header = "KEY\tNAME"
	}
	fmt.Fprintf(tw, "%s\tREQUESTS\tERRORS\n", header)
	var total, errs int64
	for _, n := range counts {
		label := n.Group
		if group == store.GroupByKey {
			name := names[n.Group]
			if name == "" {
				name = "-"
			}
			label += "\t" + name
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", label, n.Count, n.Errors)
		total += n.Count
		errs += n.Errors
	}
	totalLabel := "TOTAL"
	if group == store.GroupByKey {
		totalLabel += "\t"
	}
	fmt.Fprintf(tw, "%s\t%d\t%d\n", totalLabel, total, errs)
	return tw.Flush()
}
