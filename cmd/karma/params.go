package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/redact"
)

func newParamsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "params",
		Short: "Publish resolved configs to Parameter Store and inspect it",
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newParamsPublishCmd(g), newParamsListCmd(g), newParamsPutCmd(g), newParamsGetCmd(g))
	return c
}

func newParamsPublishCmd(g *globals) *cobra.Command {
	var env string
	var dryRun, asJSON bool
	c := &cobra.Command{
		Use:   "publish [<type> <nickname>] [--env E]",
		Short: "Publish resolved configs from Git to <prefix>/<type>/<nickname>/config",
		Long: `Publishes each component's resolved config as compact JSON (Advanced tier above 4 KB), recording
the commit it came from in the parameter's description. An unchanged config is not written again
(no new version). A config whose working-tree content is not the checked-out commit's
(uncommitted changes) is refused, naming the component: commit it first. Nothing is published when the repository has errors, or when any parameter
breaks a Parameter Store rule (name, size): every one is checked before the first is written.
--dry-run lists exactly the parameters the run would write (value or type differing from the
current one) with the version each would get, and writes none.`,
		Args: argsUsage(func(c *cobra.Command, args []string) error {
			if len(args) != 0 && len(args) != 2 {
				return fmt.Errorf("want no arguments or <type> <nickname>, got %d", len(args))
			}
			return nil
		}),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.validateBackend(c); err != nil {
				return err
			}
			if g.paramsBackend == "none" {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--params-backend none: nothing to publish to")}
			}
			if (g.paramsBackend == "ssm" || g.paramsBackend == "aws") && env == "" {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--env is required with --params-backend ssm (one account is one environment)")}
			}
			s, err := g.open(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			res, err := s.build(c.Context(), env)
			if err != nil {
				return err
			}
			if err := printDiagnostics(c.ErrOrStderr(), res.Diagnostics.Errors()); err != nil {
				return fmt.Errorf("nothing published: %w", err)
			}
			var selected []*model.Component
			for _, comp := range res.Repo.Components {
				if len(args) == 2 && (comp.Type != args[0] || comp.Nickname != args[1]) {
					continue
				}
				selected = append(selected, comp)
			}
			if len(selected) == 0 {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("no component %s in %s", strings.Join(args, "/"), envLabel(env))}
			}
			commit := gitrepo.HeadCommit(g.repo)
			if err := committedConfigs(c.Context(), s, env, commit, selected); err != nil {
				return err
			}
			writes, err := publishWrites(s, res.Repo.Settings.Prefix, commit, selected)
			if err != nil {
				return err
			}
			return publish(c, writes, commit, dryRun, asJSON)
		},
	}
	c.Flags().StringVar(&env, "env", "", "only this environment")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be published")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// committedConfigs refuses the selected components whose resolved config in the working tree is
// not the one of commit, which every parameter published names in its description as where the
// value came from (params.Provenance; ingest takes such a write for Karma's own, no change): a
// config edited and not committed, or a component not committed at all, would be published
// under a commit that does not hold it. A folder outside git (NoCommit) claims no commit.
func committedConfigs(ctx context.Context, s *session, env, commit string, selected []*model.Component) error {
	if commit == gitrepo.NoCommit {
		return nil
	}
	repo, err := gitrepo.OpenLocal(s.g.repo)
	if err != nil {
		return err
	}
	defer repo.Close()
	tree, err := repo.Tree(ctx, commit)
	if err != nil {
		return fmt.Errorf("nothing published: reading commit %.12s: %w", commit, err)
	}
	at, err := model.BuildFS(ctx, tree, tree.String(), model.BuildOptions{LoadOptions: model.LoadOptions{Env: env, Settings: model.Settings{Prefix: s.g.prefix}}})
	if err != nil {
		return fmt.Errorf("nothing published: reading commit %.12s: %w", commit, err)
	}
	committed := map[string][]byte{}
	for _, comp := range at.Repo.Components {
		committed[comp.ID()] = comp.Resolved
	}
	var errs []error
	for _, comp := range selected {
		if r, ok := committed[comp.ID()]; !ok || !bytes.Equal(r, comp.Resolved) {
			errs = append(errs, fmt.Errorf("%s (%s): its resolved config in the working tree is not commit %.12s's (uncommitted changes), which its description would name", comp.ID(), comp.File(), commit))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nothing published: %w; commit them first", errors.Join(errs...))
	}
	return nil
}

// paramWrite is one parameter publish will write, to the store of its component's environment.
type paramWrite struct {
	comp  *model.Component
	store params.Store
	in    params.PutInput
}

// publishWrites prepares the writes of the selected components and checks every one against
// Parameter Store's rules (params.CheckPut), reporting all the refused ones at once.
func publishWrites(s *session, prefix, commit string, selected []*model.Component) ([]paramWrite, error) {
	var writes []paramWrite
	var errs []error
	for _, comp := range selected {
		st, err := s.params(comp.Env)
		if err != nil {
			return nil, err
		}
		value := string(comp.Resolved)
		in := params.PutInput{Name: model.ConfigParam(prefix, comp.Type, comp.Nickname), Value: value, Tier: params.TierFor(value),
			Description: params.Provenance("commit="+commit+" file="+comp.File(), value), User: localUser()}
		if _, err := params.CheckPut(in); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", comp.ID(), comp.File(), err))
			continue
		}
		writes = append(writes, paramWrite{comp: comp, store: st, in: in})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nothing published: %w", errors.Join(errs...))
	}
	return writes, nil
}

// published is what `karma params publish --json` prints.
type published struct {
	Commit    string           `json:"commit"`
	DryRun    bool             `json:"dry_run"`
	Written   []publishedParam `json:"written"` // with --dry-run: would be written
	Unchanged int              `json:"unchanged"`
}

type publishedParam struct {
	Name      string `json:"name"`
	Env       string `json:"env"`
	Component string `json:"component"`
	Version   int64  `json:"version"` // the new version (with --dry-run: the one it would get)
	Bytes     int    `json:"bytes"`
}

// publish writes (or, with dryRun, lists what it would write of) checked parameters.
func publish(c *cobra.Command, writes []paramWrite, commit string, dryRun, asJSON bool) error {
	out := published{Commit: commit, DryRun: dryRun, Written: []publishedParam{}}
	for _, w := range writes {
		p := publishedParam{Name: w.in.Name, Env: w.comp.Env, Component: w.comp.ID(), Bytes: len(w.in.Value)}
		if dryRun {
			version, write, err := wouldWrite(c.Context(), w.store, w.in)
			if err != nil {
				return fmt.Errorf("reading %s (%s): %w", w.in.Name, w.comp.ID(), err)
			}
			if !write {
				out.Unchanged++
				continue
			}
			p.Version = version + 1
		} else {
			r, err := w.store.Put(c.Context(), w.in)
			if err != nil {
				return fmt.Errorf("publishing %s (%s): %w", w.in.Name, w.comp.ID(), err)
			}
			if !r.Changed {
				out.Unchanged++
				continue
			}
			p.Version = r.Version
		}
		out.Written = append(out.Written, p)
		if !asJSON && dryRun {
			fmt.Fprintf(c.OutOrStdout(), "would publish %-50s %s  version %d (%d bytes)\n", p.Name, p.Env, p.Version, p.Bytes)
		} else if !asJSON {
			fmt.Fprintf(c.OutOrStdout(), "published %-50s %s  version %d\n", p.Name, p.Env, p.Version)
		}
	}
	switch {
	case asJSON:
		return writeJSON(c.OutOrStdout(), out)
	case dryRun:
		fmt.Fprintf(c.OutOrStdout(), "%d would be published, %d unchanged (commit %s; dry run: nothing written)\n", len(out.Written), out.Unchanged, commit)
	default:
		fmt.Fprintf(c.OutOrStdout(), "%d published, %d unchanged (commit %s)\n", len(out.Written), out.Unchanged, commit)
	}
	return nil
}

// wouldWrite reports whether Put(in) would write a new version, as every store decides (the
// params.Store contract): unless a current value exists with the same value and type. version is
// the current version (0: none).
func wouldWrite(ctx context.Context, st params.Store, in params.PutInput) (version int64, write bool, err error) {
	cur, err := st.Get(ctx, in.Name)
	if errors.Is(err, params.ErrNotFound) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	typ := in.Type
	if typ == "" {
		typ = params.TypeString
	}
	return cur.Version, cur.Value != in.Value || cur.Type != typ, nil
}

func envLabel(env string) string {
	if env == "" {
		return "any environment"
	}
	return "environment " + env
}

func newParamsListCmd(g *globals) *cobra.Command {
	var env string
	var asJSON bool
	c := &cobra.Command{
		Use:   "list --env E",
		Short: "List the parameters under the prefix (SecureString values and secret-named values redacted)",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := g.validateBackend(c); err != nil {
				return err
			}
			if env == "" {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--env is required")}
			}
			s, err := g.open(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			st, err := s.params(env)
			if err != nil || st == nil {
				return fmt.Errorf("no parameter store for %s: %v", env, err)
			}
			settings, err := model.LoadSettings(g.repo, model.Settings{Prefix: g.prefix})
			if err != nil {
				return err
			}
			ps, err := st.GetByPath(c.Context(), settings.Prefix)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), redactedAll(ps))
			}
			printParams(c.OutOrStdout(), ps)
			return nil
		},
	}
	c.Flags().StringVar(&env, "env", "", "environment (account) to list")
	c.Flags().BoolVar(&asJSON, "json", false, "print the parameters as JSON (SecureString values redacted)")
	return c
}

func printParams(w io.Writer, ps []params.Parameter) {
	for _, p := range ps {
		v := shownValue(p)
		if len(v) > 80 {
			v = v[:77] + "..."
		}
		fmt.Fprintf(w, "%-50s v%-3d %s\n", p.Name, p.Version, v)
	}
}

// redactedAll returns the parameters as shown (shownValue).
func redactedAll(ps []params.Parameter) []params.Parameter {
	out := make([]params.Parameter, len(ps))
	for i, p := range ps {
		p.Value = shownValue(p)
		out[i] = p
	}
	return out
}

// shownValue is a parameter's value as `params list` and `get` show it: a SecureString's
// redacted whole (Parameter.Redacted); a JSON document (a config, a runtime) with the values
// under secret-named keys redacted, as GET /components shows it (api.RedactBody) — a module
// output the module does not mark sensitive is published as a String; any other String with
// the passwords of its URLs and its secret-named NAME=value pairs redacted (redact.Text), as in
// a string of such a document. The parameter is untouched.
func shownValue(p params.Parameter) string {
	v := p.Redacted()
	if p.Type == params.TypeSecureString {
		return v
	}
	if json.Valid([]byte(v)) {
		return string(api.RedactBody([]byte(v)))
	}
	v, _ = redact.Text(v)
	return v
}

func newParamsGetCmd(g *globals) *cobra.Command {
	var env string
	var asJSON bool
	c := &cobra.Command{
		Use:   "get <name> --env E",
		Short: "Print a parameter's value (SecureString and secret-named values redacted)",
		Args:  argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if env == "" {
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--env is required")}
			}
			s, err := g.open(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			st, err := s.params(env)
			if err != nil || st == nil {
				return fmt.Errorf("no parameter store for %s: %v", env, err)
			}
			p, err := st.Get(c.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), redactedAll([]params.Parameter{p})[0])
			}
			fmt.Fprintln(c.OutOrStdout(), shownValue(p))
			return nil
		},
	}
	c.Flags().StringVar(&env, "env", "", "environment (account)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the parameter with its version, type and provenance as JSON (SecureString redacted)")
	return c
}
