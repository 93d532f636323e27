package main

// karma audit head and karma audit verify: checkpoints of the chain heads, their witness, and
// verification against them (docs/audit.md).

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/audit"
)

// witnessFlags choose the Parameter Store parameter that witnesses checkpoints.
type witnessFlags struct {
	env, param string
}

func (w *witnessFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&w.env, "witness-env", "audit", "environment whose Parameter Store holds the witness (the embedded store keeps one per environment; with SSM, the caller's account)")
	c.Flags().StringVar(&w.param, "witness-param", "/karma/audit/checkpoint", "the witness parameter: one version per checkpoint")
}

// open returns the witness on s's parameter store.
func (w *witnessFlags) open(c *cobra.Command, s *session) (*audit.ParamWitness, error) {
	if err := s.g.validateBackend(c); err != nil {
		return nil, err
	}
	store, err := s.params(w.env)
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, &usageError{cmd: c.CommandPath(), err: errors.New("the witness is a Parameter Store parameter: --params-backend none has none")}
	}
	return &audit.ParamWitness{Store: store, Name: w.param, User: localUser()}, nil
}

func newAuditHeadCmd(g *globals) *cobra.Command {
	var wf witnessFlags
	var witness, asJSON bool
	c := &cobra.Command{
		Use:   "head [--witness] [--json]",
		Short: "Checkpoint every chain's head: print one digest of them, keep the checkpoint in the log",
		Long: `Reads the head (last seq and hash) of every chain, prints one digest of them and records the
checkpoint in the log (chain audit/checkpoints), so that 'karma audit verify --against <digest>'
can later prove that nothing it saw was removed or rewritten. With --witness the digest is also
written, as a new version, to a Parameter Store parameter outside the log (unless its newest
version already holds it); 'karma audit verify --against witness' reads it back.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			out := headOutput{}
			if witness {
				w, err := wf.open(c, s)
				if err != nil {
					return err
				}
				var written audit.Witnessed
				if out.Checkpoint, written, err = audit.WriteCheckpoint(c.Context(), st.audit, w, "cli", localUser(), time.Now()); err != nil {
					return err
				}
				out.Witness = &witnessRef{Parameter: w.Name, Env: wf.env, Witnessed: written}
			} else {
				cp, err := audit.TakeCheckpoint(c.Context(), st.audit, time.Now())
				if err != nil {
					return err
				}
				if out.Checkpoint, err = audit.SaveCheckpoint(c.Context(), st.audit, cp, "cli", localUser()); err != nil {
					return err
				}
			}
			if asJSON {
				out.Checkpoint.Heads = nil
				return writeJSON(c.OutOrStdout(), out)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s\n%d chain(s), %d record(s), taken %s\n", out.Digest, out.Chains, out.Records, out.TakenAt.Format(time.RFC3339))
			if out.Witness != nil {
				fmt.Fprintf(c.OutOrStdout(), "witnessed: version %d of %s (parameter store of env %s)\n", out.Witness.Version, out.Witness.Parameter, out.Witness.Env)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&witness, "witness", false, "also write the digest to the witness parameter")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	wf.add(c)
	return c
}

// headOutput is what `audit head --json` prints.
type headOutput struct {
	audit.Checkpoint
	Witness *witnessRef `json:"witness,omitempty"`
}

// witnessRef is a witness entry and where it is kept.
type witnessRef struct {
	Parameter string `json:"parameter"`
	Env       string `json:"env"`
	audit.Witnessed
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	var wf witnessFlags
	var against string
	var version int64
	var asJSON bool
	c := &cobra.Command{
		Use:   "verify [--against <digest>|witness [--witness-version N]] [--json]",
		Short: "Check every chain's links and heads (and, --against, that nothing was removed since a checkpoint); exit 1 on tampering",
		Long: `Checks every chain of the audit log: each record's seq (from 1), its link to the previous record's
hash, its own hash, and the chain's stored head. That finds an edited, inserted, reordered or
removed record, the newest included, and names the first broken link of each chain.

Someone who can write the log can also remove the newest records and roll the head back, drop
a chain, or rewrite one consistently; the log then checks out on its own. --against <digest>
(printed by 'karma audit head') also checks that every chain of that checkpoint still exists,
at least as long, with the same hash there; --against witness takes the digest from the
witness parameter (its newest version, or --witness-version). Exit 1 when anything is broken.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			digest, fromWitness, err := parseAgainst(against, version)
			if err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			out := verifyOutput{}
			if fromWitness {
				w, err := wf.open(c, s)
				if err != nil {
					return err
				}
				if out.Witness, err = readWitness(c, w, wf.env, version); err != nil {
					return err
				}
				digest = out.Witness.Digest
			}
			var opts audit.VerifyOptions
			if digest != "" {
				cp, err := audit.LoadCheckpoint(c.Context(), st.audit, digest)
				if err != nil {
					return err
				}
				opts.Against = &cp
			}
			if out.Report, err = audit.VerifyLog(c.Context(), st.audit, opts); err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(c.OutOrStdout(), out); err != nil {
					return err
				}
			} else if len(out.Broken) == 0 {
				printVerified(c.OutOrStdout(), out)
			}
			return verifyFailure(out.Report, asJSON)
		},
	}
	c.Flags().StringVar(&against, "against", "", `a checkpoint digest from 'karma audit head', or "witness"`)
	c.Flags().Int64Var(&version, "witness-version", 0, "with --against witness: this version of the witness parameter (default: the newest)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (the report, also when the log does not verify)")
	wf.add(c)
	return c
}

// verifyOutput is what `audit verify --json` prints.
type verifyOutput struct {
	audit.Report
	Witness *witnessRef `json:"witness,omitempty"`
}

// parseAgainst reads --against and --witness-version.
func parseAgainst(against string, version int64) (digest string, fromWitness bool, err error) {
	switch {
	case version < 0:
		return "", false, fmt.Errorf("--witness-version %d: want a version number (1 or more)", version)
	case version > 0 && against != "witness":
		return "", false, errors.New("--witness-version needs --against witness")
	case against == "witness":
		return "", true, nil
	case against == "":
		return "", false, nil
	}
	d, err := audit.ParseDigest(against)
	if err != nil {
		return "", false, fmt.Errorf("--against: %w, or \"witness\"", err)
	}
	return d, false, nil
}

func readWitness(c *cobra.Command, w *audit.ParamWitness, env string, version int64) (*witnessRef, error) {
	history, err := w.History(c.Context())
	if err != nil {
		return nil, err
	}
	entry, err := audit.Pick(history, version)
	if err != nil {
		return nil, fmt.Errorf("witness %s (parameter store of env %s): %w", w.Name, env, err)
	}
	return &witnessRef{Parameter: w.Name, Env: env, Witnessed: entry}, nil
}

func printVerified(w io.Writer, out verifyOutput) {
	fmt.Fprintf(w, "%d chain(s) verified, %d record(s)\n", out.Chains, out.Records)
	if a := out.Against; a != nil {
		fmt.Fprintf(w, "nothing removed or rewritten since checkpoint %s (taken %s: %d chain(s), %d record(s))\n",
			audit.Short(a.Digest), a.TakenAt.Format(time.RFC3339), a.Chains, a.Records)
	}
	if wr := out.Witness; wr != nil {
		fmt.Fprintf(w, "checkpoint from the witness: version %d of %s, written %s by %s\n",
			wr.Version, wr.Parameter, wr.WrittenAt.UTC().Format(time.RFC3339), wr.WrittenBy)
	}
}

// verifyFailure is nil when the report shows nothing broken, else the error naming every
// broken chain's first broken link (silent when the JSON report already says it).
func verifyFailure(r audit.Report, asJSON bool) error {
	if len(r.Broken) == 0 {
		return nil
	}
	lines := make([]string, len(r.Broken))
	for i, b := range r.Broken {
		lines[i] = "  " + b.Link()
	}
	err := fmt.Errorf("the audit log does not verify: %d of %d chain(s) broken, first broken link of each:\n%s",
		len(r.Broken), r.Chains, strings.Join(lines, "\n"))
	if asJSON {
		return &silentError{err}
	}
	return err
}
