package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/audit"
	auditw "github.com/usekarma/karma/workers/audit"
)

func newAuditCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Query and verify the audit log; checkpoint its chain heads",
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newAuditLogCmd(g), newAuditHeadCmd(g), newAuditVerifyCmd(g))
	return c
}

func newAuditLogCmd(g *globals) *cobra.Command {
	var q audit.Query
	var since string
	var asJSON bool
	c := &cobra.Command{
		Use:   "log [--component ID] [--since T] [--actor A] [--correlation ID] [--json]",
		Short: "Every message of every stage, oldest first: who caused it, who approved it, and why",
		Long: `Every message of every stage, oldest first. Each line reads

  <time UTC>  <type>  <chain>#<seq>  by <author>; approved by <approver>; cause: <why>

author: who caused the root change, as recorded at its source (git author, IAM principal, CLI
user); approver: who approved a held plan (deployment.approved), distinct from the author;
cause: the commit, parameter@version, change request or upstream deployment behind the entry
(from its payload), why it was skipped or failed, else the message it answered.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if q.Limit < 0 {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--limit %d: want a number of records, at least 1 (or 0, the default: every record)", q.Limit)}
			}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return &usageError{cmd: c.CommandPath(), err: err}
				}
				q.Since = t
			}
			if cl, err := g.remote(c); err != nil || cl != nil {
				if err != nil {
					return err
				}
				return remoteLog(c.Context(), c.OutOrStdout(), cl, q, asJSON)
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			// One record past --limit says whether more exist, as the --server log says "(more: …)".
			lq := q
			if q.Limit > 0 {
				lq.Limit = q.Limit + 1
			}
			recs, err := st.audit.Query(c.Context(), lq)
			if err != nil {
				return err
			}
			more := q.Limit > 0 && len(recs) > q.Limit
			if more {
				recs = recs[:q.Limit]
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), explainAll(recs))
			}
			printAudit(c.OutOrStdout(), recs)
			if more {
				printMore(c.OutOrStdout(), q.Limit)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&q.Component, "component", "", "component id <env>/<type>/<nickname>")
	f.StringVar(&q.Actor, "actor", "", "who caused it (as recorded: git author, IAM principal, CLI user)")
	f.StringVar(&q.Correlation, "correlation", "", "root cause id (change id)")
	f.StringVar(&q.DeploymentID, "deployment", "", "deployment id")
	f.StringVar(&since, "since", "", "RFC 3339 time or a duration ago (e.g. 1h)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many records, the oldest first (0: every record)")
	f.BoolVar(&asJSON, "json", false, "print JSON: each record with its explanation")
	return c
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: a negative duration would be a time in the future: give how long ago, such as %s", s, (-d).String())
		}
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("--since %q: want an RFC 3339 time or a duration such as 1h", s)
	}
	return t, nil
}

// explainedRecord is a record as `audit log --json` prints it.
type explainedRecord struct {
	audit.Record
	Explanation auditw.Explanation `json:"explanation"`
}

// explainAll is recs as `audit log --json` prints them, locally and with --server alike: each
// with its explanation, and its body with secrets redacted as GET /log shows it (api.RedactBody;
// a body the server already redacted is unchanged by it).
func explainAll(recs []audit.Record) []explainedRecord {
	out := make([]explainedRecord, len(recs))
	for i, e := range explainListed(recs) {
		out[i] = explainedRecord{Record: recs[i], Explanation: e}
		out[i].Body = api.RedactBody(recs[i].Body)
	}
	return out
}

// explainListed explains each of recs (auditw.Explain); a record whose payload names no cause
// is explained by the message it answered: "after <type> <chain>#<seq>" when that record is
// among recs, else "after message <id>" — in the text and the JSON alike (docs/audit.md).
func explainListed(recs []audit.Record) []auditw.Explanation {
	byID := make(map[string]audit.Record, len(recs))
	for _, r := range recs {
		byID[r.MessageID] = r
	}
	out := make([]auditw.Explanation, len(recs))
	for i, r := range recs {
		e := auditw.Explain(r)
		if e.Cause == "" && r.CausationID != "" {
			e.Cause = "after message " + r.CausationID
			if prev, ok := byID[r.CausationID]; ok {
				e.Cause = fmt.Sprintf("after %s %s#%d", prev.Type, prev.Chain, prev.Seq)
			}
		}
		out[i] = e
	}
	return out
}

func printAudit(w io.Writer, recs []audit.Record) {
	for i, e := range explainListed(recs) {
		r := recs[i]
		parts := []string{"by " + e.Author}
		if e.Approver != "" {
			parts = append(parts, "approved by "+e.Approver)
		}
		if e.Cause != "" {
			parts = append(parts, "cause: "+e.Cause)
		}
		fmt.Fprintf(w, "%s  %-24s %-32s %s\n", r.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z"), r.Type,
			fmt.Sprintf("%s#%d", r.Chain, r.Seq), strings.Join(parts, "; "))
	}
	fmt.Fprintf(w, "%d record(s)\n", len(recs))
}

// printMore says, after the records printAudit printed, that --limit left some out.
func printMore(w io.Writer, limit int) {
	fmt.Fprintf(w, "(more: --limit %d reached; narrow the query or raise --limit)\n", limit)
}
