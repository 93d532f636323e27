package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/api/client"
	"github.com/usekarma/karma/shared/audit"
)

// The CLI against a running Karma (--server URL or KARMA_SERVER; the bearer token in KARMA_TOKEN)
// instead of the stores, for people without direct access to them: impact, propose-change,
// changes, apply (approve), reject, audit log and lineage go through the HTTP API (docs/api.md).
// Commands that need the stores themselves (graph build, params, ingest, plan, dlq, serve, …)
// refuse --server with exit 2.

// remote is the API client when --server is given, nil otherwise.
func (g *globals) remote(c *cobra.Command) (*client.Client, error) {
	if g.server == "" {
		return nil, nil
	}
	cl, err := client.New(g.server, client.Options{Token: os.Getenv("KARMA_TOKEN")})
	if err != nil {
		return nil, &usageError{cmd: c.CommandPath(), err: err}
	}
	return cl, nil
}

// localOnly refuses --server for a command that needs the stores.
func (g *globals) localOnly(c *cobra.Command) error {
	if g.server != "" {
		return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--server: %s works on the stores themselves, not through the API (run it where the stores are)", c.CommandPath())}
	}
	return nil
}

// remoteFlags refuses (exit 2) the flags set on the command line that the API cannot honour
// with --server, each with why: taken silently, they would be ignored — an approval recorded as
// someone other than --as names, a rollback left waiting that --auto-approve was to apply.
func remoteFlags(c *cobra.Command, why map[string]string) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(why)) {
		if c.Flags().Changed(name) {
			errs = append(errs, fmt.Errorf("--server: --%s: %s", name, why[name]))
		}
	}
	if len(errs) > 0 {
		return &usageError{cmd: c.CommandPath(), err: errors.Join(errs...)}
	}
	return nil
}

func remoteImpact(ctx context.Context, c *cobra.Command, cl *client.Client, env string, args []string, keys string, asJSON bool) error {
	if len(args) != 1 {
		return &usageError{cmd: c.CommandPath(), err: errors.New("--server: one component at a time")}
	}
	id := args[0]
	if strings.Count(id, "/") == 1 {
		if env == "" {
			return &usageError{cmd: c.CommandPath(), err: errors.New("--server: give <env>/<type>/<nickname> or --env")}
		}
		id = env + "/" + id
	}
	var ks []string
	if keys != "" {
		ks = strings.Split(keys, ",")
	}
	rep, err := cl.Impact(ctx, id, ks)
	if err != nil {
		return remoteNotFound(c, err)
	}
	if asJSON {
		return writeJSON(c.OutOrStdout(), rep)
	}
	printImpact(c.OutOrStdout(), *rep, false)
	return nil
}

func remoteProposeChange(ctx context.Context, c *cobra.Command, cl *client.Client, env, typ, nick string, data []byte, as string, auto, asJSON bool) error {
	if env == "" {
		return &usageError{cmd: c.CommandPath(), err: errors.New("--server: --env is required")}
	}
	created, err := cl.RequestChange(ctx, api.ChangeRequest{Component: env + "/" + typ + "/" + nick, ProposedChange: json.RawMessage(data),
		RequestedBy: as, AutoApprove: auto})
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(c.OutOrStdout(), created)
	}
	fmt.Fprintf(c.OutOrStdout(), "change %s queued (%s, by %s): commit %.12s on %s\n", created.ChangeID, created.Component, as, created.Commit, created.Branch)
	printImpact(c.OutOrStdout(), created.Impact, false)
	return nil
}

func remoteApprove(ctx context.Context, c *cobra.Command, cl *client.Client, ids []string) error {
	if len(ids) == 0 {
		return &usageError{cmd: c.CommandPath(), err: errors.New("--server: name the change ids to approve (karma changes lists them)")}
	}
	for _, id := range ids {
		d, err := cl.Approve(ctx, id)
		if err != nil {
			return remoteNotFound(c, fmt.Errorf("change %s: %w", id, err))
		}
		if d.Pending > 0 {
			fmt.Fprintf(c.OutOrStdout(), "change %s: approval recorded (%d of %d); it waits for %d more from someone else\n", id, len(d.Change.Approvals), d.Change.ApprovalsRequired, d.Pending)
			continue
		}
		fmt.Fprintf(c.OutOrStdout(), "change %s approved: %s\n", id, d.Change.State)
	}
	return nil
}

// logPageMax is the largest page GET /log serves (its limit: 1 to 1000, shared/api/log.go).
const logPageMax = 1000

// remoteLog asks GET /log page after page, following next_cursor until the log is exhausted or
// q.Limit records are read, so that it prints the records the local command prints for the
// same filters: an auditor is never shown one page as if it were all.
func remoteLog(ctx context.Context, w io.Writer, cl *client.Client, q audit.Query, asJSON bool) error {
	recs := []audit.Record{}
	more, cursor, pages := false, "", 0
	for {
		size := logPageMax
		if q.Limit > 0 && q.Limit-len(recs) < size {
			size = q.Limit - len(recs)
		}
		page, err := cl.Log(ctx, client.LogQuery{Component: q.Component, Deployment: q.DeploymentID, Correlation: q.Correlation, Actor: q.Actor,
			Since: q.Since, Until: q.Until, Limit: size, Cursor: cursor})
		if err != nil {
			if pages > 0 {
				return fmt.Errorf("audit log: %d record(s) read, then page %d failed (nothing printed): %w", len(recs), pages+1, err)
			}
			return err
		}
		pages++
		for _, r := range page.Records {
			if q.Limit > 0 && len(recs) == q.Limit {
				break
			}
			rec := r.Record
			rec.Body = r.Body
			recs = append(recs, rec)
		}
		more = page.NextCursor != ""
		if !more || (q.Limit > 0 && len(recs) >= q.Limit) {
			break
		}
		if page.NextCursor == cursor || len(page.Records) == 0 {
			return fmt.Errorf("audit log: the server's page %d (%d record(s)) gives no way on (next_cursor %q): %d record(s) read, nothing printed",
				pages, len(page.Records), page.NextCursor, len(recs))
		}
		cursor = page.NextCursor
	}
	if asJSON {
		return writeJSON(w, explainAll(recs))
	}
	printAudit(w, recs)
	if more {
		printMore(w, q.Limit)
	}
	return nil
}

func remoteLineage(ctx context.Context, w io.Writer, cl *client.Client, id string, asJSON bool) error {
	if !strings.HasPrefix(id, "dep-") {
		return fmt.Errorf("--server: give a deployment id (dep-…): the API answers lineage by deployment")
	}
	step, err := cl.Lineage(ctx, id)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, step)
	}
	printBackward(w, step, 0)
	return nil
}
