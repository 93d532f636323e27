package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/model"
)

func newGraphCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "graph",
		Short: "Build, validate and export the component graph",
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newGraphBuildCmd(g), newGraphExportCmd(g), newGraphQueryCmd(g))
	return c
}

func newGraphBuildCmd(g *globals) *cobra.Command {
	var env string
	var asJSON, noWrite bool
	c := &cobra.Command{
		Use:   "build",
		Short: "Build and validate the graph from the repository and Parameter Store, and store it",
		Long: `Reads every iac/<env>/<type>/<nickname>/config.json, resolves layers, validates (JSON, schemas,
references, cycles, duplicates), reads runtime state from the parameter store, prints a summary
and every problem found, and writes the graph to the graph store (only what changed).
Exit 1 when any error is found; nothing is written then.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
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
			var stats *graph.WriteStats
			if len(res.Diagnostics.Errors()) == 0 && !noWrite {
				st, err := s.graphStore()
				if err != nil {
					return err
				}
				ws, err := st.Write(c.Context(), res.Graph, res.Repo.Environments)
				if err != nil {
					return fmt.Errorf("writing graph: %w", err)
				}
				stats = &ws
			}
			if asJSON {
				if err := writeJSON(c.OutOrStdout(), buildSummary(res, stats)); err != nil {
					return err
				}
				if len(res.Diagnostics.Errors()) > 0 {
					return &silentError{fmt.Errorf("%d error(s)", len(res.Diagnostics.Errors()))}
				}
				return nil
			}
			printSummary(c.OutOrStdout(), res, stats)
			return printDiagnostics(c.ErrOrStderr(), res.Diagnostics)
		},
	}
	c.Flags().StringVar(&env, "env", "", "only this environment")
	c.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	c.Flags().BoolVar(&noWrite, "no-write", false, "validate only; do not write the graph store")
	return c
}

type summary struct {
	Repo           string            `json:"repo"`
	Environments   []string          `json:"environments"`
	Components     int               `json:"components"`
	Edges          int               `json:"edges"`
	Waves          int               `json:"waves"`
	Errors         int               `json:"errors"`
	Warnings       int               `json:"warnings"`
	Orphans        []string          `json:"orphans"`
	MissingRuntime []string          `json:"missing_runtime"`
	Placeholders   []string          `json:"placeholder_runtime"`
	Isolated       []string          `json:"isolated"`
	Diagnostics    model.Diagnostics `json:"diagnostics"`
	Written        *graph.WriteStats `json:"written,omitempty"`
}

func buildSummary(res *model.Result, stats *graph.WriteStats) summary {
	gr := res.Graph
	s := summary{Repo: res.Repo.Root, Environments: res.Repo.Environments, Components: gr.Len(), Edges: len(gr.Edges),
		Errors: len(res.Diagnostics.Errors()), Warnings: len(res.Diagnostics.Warnings()), Orphans: res.Orphans,
		Diagnostics: res.Diagnostics, Written: stats, MissingRuntime: []string{}, Placeholders: []string{}}
	if s.Orphans == nil {
		s.Orphans = []string{}
	}
	if s.Diagnostics == nil {
		s.Diagnostics = model.Diagnostics{}
	}
	if w, err := gr.Waves(); err == nil {
		s.Waves = len(w)
	}
	for _, c := range gr.Components {
		switch c.RuntimeStatus {
		case graph.RuntimeMissing:
			s.MissingRuntime = append(s.MissingRuntime, c.ID)
		case graph.RuntimePlaceholder:
			s.Placeholders = append(s.Placeholders, c.ID)
		}
	}
	s.Isolated = gr.IDs(gr.Isolated())
	return s
}

func printSummary(w io.Writer, res *model.Result, stats *graph.WriteStats) {
	s := buildSummary(res, stats)
	fmt.Fprintf(w, "repository   %s\nenvironments %v\ncomponents   %d\nedges        %d\nwaves        %d\n",
		s.Repo, s.Environments, s.Components, s.Edges, s.Waves)
	list := func(title string, ids []string) {
		if len(ids) == 0 {
			return
		}
		fmt.Fprintf(w, "%s (%d):\n", title, len(ids))
		for _, id := range ids {
			fmt.Fprintf(w, "  %s\n", id)
		}
	}
	list("runtime missing", s.MissingRuntime)
	list("runtime placeholder", s.Placeholders)
	list("orphans (in Parameter Store, not in Git)", s.Orphans)
	if stats != nil {
		fmt.Fprintf(w, "graph store  %d components and %d edges written, %d deleted, %d unchanged\n",
			stats.ComponentsWritten, stats.EdgesWritten, stats.ComponentsDeleted+stats.EdgesDeleted, stats.Unchanged)
	}
	fmt.Fprintf(w, "%d error(s), %d warning(s)\n", s.Errors, s.Warnings)
}

func newGraphExportCmd(g *globals) *cobra.Command {
	var env, format, out string
	c := &cobra.Command{
		Use:   "export",
		Short: "Export the graph as JSON (karma.graph.v1), DOT or Mermaid",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := g.validateBackend(c); err != nil {
				return err
			}
			var write func(*graph.Graph, io.Writer) error
			switch format {
			case "json":
				write = (*graph.Graph).WriteJSON
			case "dot":
				write = (*graph.Graph).WriteDOT
			case "mermaid":
				write = (*graph.Graph).WriteMermaid
			default:
				return &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--format %q: want json, dot or mermaid", format)}
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
			w := c.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			return write(res.Graph, w)
		},
	}
	c.Flags().StringVar(&env, "env", "", "only this environment")
	c.Flags().StringVar(&format, "format", "json", "json | dot | mermaid")
	c.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	return c
}
