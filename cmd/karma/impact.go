package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
)

func newImpactCmd(g *globals) *cobra.Command {
	var env, keys, onlyType string
	var asJSON, upstream bool
	c := &cobra.Command{
		Use:   "impact <type>/<nickname>... [--env E]",
		Short: "What a change to these components affects: the blast radius, its waves and why",
		Long: `Lists every component downstream of the given ones (or, with --upstream, everything they depend
on), the waves in which they would be applied, and for each the reason chain: which reference of
which config links it to the change. --keys limits the first hop to dependents that consume one of
the changed runtime keys. Components are <type>/<nickname> (with --env, or when only one
environment defines it) or <env>/<type>/<nickname>. A runtime a component writes per sub-object
(lambda/<function>, see docs/config-format.md) names that component, and the first hop follows
only the dependents reading that runtime.`,
		Args: argsUsage(cobra.MinimumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if cl, err := g.remote(c); err != nil || cl != nil {
				if err != nil {
					return err
				}
				if upstream || onlyType != "" {
					return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--server: --upstream and --type work on the local repository only")}
				}
				return remoteImpact(c.Context(), c, cl, env, args, keys, asJSON)
			}
			if err := g.validateBackend(c); err != nil {
				return err
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
				return err
			}
			seeds, runtime, err := resolveSeeds(res, env, args)
			if err != nil {
				return &usageError{cmd: c.CommandPath(), err: err}
			}
			var filter func(*graph.Component) bool
			if onlyType != "" {
				if err := knownType(res.Graph, onlyType); err != nil {
					return &usageError{cmd: c.CommandPath(), err: err}
				}
				filter = func(x *graph.Component) bool { return x.Type == onlyType }
			}
			var imp *graph.Impact
			if upstream {
				imp = res.Graph.Upstream(seeds, filter)
			} else {
				opts := graph.ImpactOptions{Filter: filter, ChangedRuntime: runtime}
				if keys != "" {
					opts.ChangedKeys = strings.Split(keys, ",")
				}
				imp, err = res.Graph.Downstream(seeds, opts)
				if err != nil {
					return err
				}
			}
			rep := res.Graph.Report(imp)
			if asJSON {
				return writeJSON(c.OutOrStdout(), rep)
			}
			printImpact(c.OutOrStdout(), rep, upstream)
			return nil
		},
	}
	c.Flags().StringVar(&env, "env", "", "environment of the named components")
	c.Flags().StringVar(&keys, "keys", "", "comma-separated runtime keys that changed (first hop only follows consumers of these)")
	c.Flags().StringVar(&onlyType, "type", "", "show only components of this type (the traversal is unchanged)")
	c.Flags().BoolVar(&upstream, "upstream", false, "list dependencies instead of dependents")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// resolveSeeds turns command-line names into graph indexes, reporting every bad name at once. A
// name may also be a runtime a component writes per sub-object (lambda/<function>): its seed is
// that component, and runtime is the parameter that changed. Such a name must be the only one.
func resolveSeeds(res *model.Result, env string, args []string) (seeds []int32, runtime string, err error) {
	var problems []string
	for _, a := range args {
		parts := strings.Split(a, "/")
		var candidates []seedCandidate
		switch {
		case len(parts) == 3:
			candidates = findSeed(res, parts[0], parts[1]+"/"+parts[2])
		case len(parts) == 2 && env != "":
			candidates = findSeed(res, env, a)
		case len(parts) == 2:
			for _, e := range res.Repo.Environments {
				candidates = append(candidates, findSeed(res, e, a)...)
			}
			if len(candidates) > 1 {
				var ids []string
				for _, c := range candidates {
					ids = append(ids, c.name)
				}
				problems = append(problems, fmt.Sprintf("%s is defined in %s: choose one with --env", a, strings.Join(ids, ", ")))
				continue
			}
		default:
			problems = append(problems, fmt.Sprintf("%q: want <type>/<nickname> or <env>/<type>/<nickname>", a))
			continue
		}
		if len(candidates) == 0 {
			if len(parts) == 2 && env != "" {
				a = env + "/" + a
			}
			problems = append(problems, fmt.Sprintf("%s: no such component", a))
			continue
		}
		if candidates[0].runtime != "" {
			if len(args) > 1 {
				problems = append(problems, fmt.Sprintf("%s is a runtime %s writes (%s): name it alone", a, res.Graph.Components[candidates[0].index].ID, candidates[0].runtime))
				continue
			}
			runtime = candidates[0].runtime
		}
		seeds = append(seeds, candidates[0].index)
	}
	if len(problems) > 0 {
		return nil, "", fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return seeds, runtime, nil
}

// seedCandidate is a component a name may mean; runtime is set when the name is one of the
// runtimes it writes per sub-object.
type seedCandidate struct {
	name    string // <env>/<type>/<nickname> as given
	index   int32
	runtime string
}

// findSeed looks "<type>/<nickname>" up in env: a component, else a per-sub-object runtime.
func findSeed(res *model.Result, env, ref string) []seedCandidate {
	if i, ok := res.Graph.Index(env + "/" + ref); ok {
		return []seedCandidate{{name: env + "/" + ref, index: i}}
	}
	t, n, _ := strings.Cut(ref, "/")
	path := model.RuntimeParam(res.Repo.Settings.Prefix, t, n)
	if i, ok := res.Graph.SubRuntimeWriter(env, path); ok {
		return []seedCandidate{{name: env + "/" + ref, index: i, runtime: path}}
	}
	return nil
}

func printImpact(w io.Writer, d graph.ImpactReport, upstream bool) {
	what := "affected"
	if upstream {
		what = "dependencies"
	}
	fmt.Fprintf(w, "%d %s (seeds included)\n", len(d.Affected), what)
	for i, wv := range d.Waves {
		fmt.Fprintf(w, "wave %d: %s\n", i, strings.Join(wv, ", "))
	}
	fmt.Fprintln(w, "why:")
	for _, a := range d.Affected {
		if len(a.Reason) == 0 {
			fmt.Fprintf(w, "  %s: changed\n", a.ID)
			continue
		}
		// seed <- dependent [how] <- its dependent [how] ...; upstream chains read the other way.
		var b strings.Builder
		first, next := a.Reason[0].To, func(r graph.ReasonStep) string { return r.From }
		arrow := " <- "
		if upstream {
			first, next, arrow = a.Reason[0].From, func(r graph.ReasonStep) string { return r.To }, " -> "
		}
		b.WriteString(first)
		for _, r := range a.Reason {
			var how []string
			for _, s := range r.Sources {
				how = append(how, s.Rule+" at "+s.Pointer)
			}
			fmt.Fprintf(&b, "%s%s [%s]", arrow, next(r), strings.Join(how, ", "))
		}
		fmt.Fprintf(w, "  %s\n      %s\n", a.ID, b.String())
	}
}

// knownType refuses a --type no component of g has (a misspelling, ecs_service for ecs-service,
// printed an impact of nothing, as if the change redeployed nothing of that type), naming the
// types there are; as GET /impact?type= does (404).
func knownType(g *graph.Graph, typ string) error {
	types := map[string]bool{}
	for i := range g.Components {
		if g.Components[i].Type == typ {
			return nil
		}
		types[g.Components[i].Type] = true
	}
	return fmt.Errorf("--type %q: no component of that type; the types here are %s", typ, strings.Join(slices.Sorted(maps.Keys(types)), ", "))
}
