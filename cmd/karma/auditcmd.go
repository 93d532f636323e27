package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/audit"
)

func newAuditCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Query and verify the audit log",
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	var q audit.Query
	var since string
	var asJSON bool
	logCmd := &cobra.Command{
		Use:   "log [--component ID] [--since T] [--actor A] [--correlation ID] [--json]",
		Short: "Every message of every stage, oldest first",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return &usageError{cmd: c.CommandPath(), err: err}
				}
				q.Since = t
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			recs, err := st.audit.Query(c.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				if recs == nil {
					recs = []audit.Record{}
				}
				return writeJSON(c.OutOrStdout(), recs)
			}
			printAudit(c.OutOrStdout(), recs)
			return nil
		},
	}
	f := logCmd.Flags()
	f.StringVar(&q.Component, "component", "", "component id <env>/<type>/<nickname>")
	f.StringVar(&q.Actor, "actor", "", "who caused it (as recorded: git author, IAM principal, CLI user)")
	f.StringVar(&q.Correlation, "correlation", "", "root cause id (change id)")
	f.StringVar(&q.DeploymentID, "deployment", "", "deployment id")
	f.StringVar(&since, "since", "", "RFC 3339 time or a duration ago (e.g. 1h)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many records")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute every chain's hashes; exit 1 if any record was altered, removed or reordered",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			chains, err := st.audit.Chains(c.Context())
			if err != nil {
				return err
			}
			var bad []string
			for _, ch := range chains {
				if err := st.audit.Verify(c.Context(), ch); err != nil {
					bad = append(bad, err.Error())
				}
			}
			if len(bad) > 0 {
				return fmt.Errorf("%s", strings.Join(bad, "\n"))
			}
			fmt.Fprintf(c.OutOrStdout(), "%d chain(s) verified\n", len(chains))
			return nil
		},
	}
	c.AddCommand(logCmd, verify)
	return c
}

func parseSince(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("--since %q: want an RFC 3339 time or a duration such as 1h", s)
	}
	return t, nil
}

func printAudit(w io.Writer, recs []audit.Record) {
	for _, r := range recs {
		subject := r.Component
		if subject == "" {
			subject = r.Chain
		}
		fmt.Fprintf(w, "%s  %-22s %-36s %-16s %s#%d\n", r.OccurredAt.Format("15:04:05.000"), r.Type, subject, truncate(r.Actor, 16), r.Chain, r.Seq)
	}
	fmt.Fprintf(w, "%d record(s)\n", len(recs))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
