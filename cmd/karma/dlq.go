package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/queue"
	"github.com/usekarma/karma/shared/redact"
)

func newDLQCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq",
		Short: "Dead-letter queues: messages that could not be processed, with why",
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	var queue string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--queue STAGE]",
		Short: "List dead letters with their reasons",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			queues, err := queuesOf(c, queue)
			if err != nil {
				return err
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			all := []deadLetter{}
			for _, q := range queues {
				ds, err := st.deadLetters().ListDead(c.Context(), q)
				if err != nil {
					return err
				}
				for _, d := range ds {
					all = append(all, deadLetterOf(q, d))
					if !asJSON {
						fmt.Fprintf(c.OutOrStdout(), "%s  %-12s %s (received %d times)\n    %.200s\n", d.DeadAt.Format("2006-01-02 15:04:05"), q, all[len(all)-1].Reason, d.ReceiveCount, all[len(all)-1].shown())
					}
				}
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), all)
			}
			fmt.Fprintf(c.OutOrStdout(), "%d dead letter(s)\n", len(all))
			return nil
		},
	}
	redrive := &cobra.Command{
		Use:   "redrive [--queue STAGE]",
		Short: "Move dead letters back to their queues (after fixing what made them fail)",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			queues, err := queuesOf(c, queue)
			if err != nil {
				return err
			}
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			total := 0
			for _, q := range queues {
				n, err := st.deadLetters().Redrive(c.Context(), q)
				if err != nil {
					return err
				}
				total += n
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), map[string]int{"redriven": total})
			}
			fmt.Fprintf(c.OutOrStdout(), "%d message(s) redriven; run karma plan or karma apply to process them\n", total)
			return nil
		},
	}
	for _, cmd := range []*cobra.Command{list, redrive} {
		cmd.Flags().StringVar(&queue, "queue", "", "one stage's queue (default: all)")
		cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	}
	c.AddCommand(list, redrive)
	return c
}

// queuesOf is the queues --queue names: one of the pipeline's stages, or every one when empty.
// Any other name is refused: no such queue has dead letters, and "0 dead letter(s)" would say
// all is well.
func queuesOf(c *cobra.Command, q string) ([]string, error) {
	if q == "" {
		return stageNames, nil
	}
	if !slices.Contains(stageNames, q) {
		return nil, &usageError{cmd: c.CommandPath(), err: fmt.Errorf("--queue %q: not a queue of the pipeline: want one of %s", q, strings.Join(stageNames, ", "))}
	}
	return []string{q}, nil
}

// deadLetterQueue is what the dlq commands need of a queue: the embedded queue and SQS have it.
type deadLetterQueue interface {
	ListDead(ctx context.Context, name string) ([]queue.DeadLetter, error)
	Redrive(ctx context.Context, name string) (int, error)
}

// deadLetters is the queue's dead letters, on whatever backend the queue is.
func (st *stack) deadLetters() deadLetterQueue {
	if dq, ok := st.transport.(deadLetterQueue); ok {
		return dq
	}
	return st.eq // under a test transport
}

// deadLetter is one dead letter as `karma dlq list --json` prints it; the body is the message
// itself when it is JSON, with secrets redacted as `karma audit log --json` and GET /log show
// it (api.RedactBody: the dead letter is untouched, redrive sends it as it was), its text
// otherwise, and the reason as recorded, both with the passwords of URLs and secret-named
// NAME=value pairs redacted (redact.Text) as in a string of a JSON body.
type deadLetter struct {
	Queue        string          `json:"queue"`
	MessageID    string          `json:"message_id"`
	Reason       string          `json:"reason"`
	ReceiveCount int             `json:"receive_count"`
	DeadAt       time.Time       `json:"dead_at"`
	Body         json.RawMessage `json:"body,omitempty"`
	BodyText     string          `json:"body_text,omitempty"`
}

func deadLetterOf(q string, d queue.DeadLetter) deadLetter {
	out := deadLetter{Queue: q, MessageID: d.MessageID, ReceiveCount: d.ReceiveCount, DeadAt: d.DeadAt.UTC()}
	out.Reason, _ = redact.Text(d.Reason)
	if json.Valid(d.Body) {
		out.Body = api.RedactBody(d.Body)
	} else {
		out.BodyText, _ = redact.Text(string(d.Body))
	}
	return out
}

// shown is the body as the text of `karma dlq list` shows it: as in its JSON.
func (d deadLetter) shown() string {
	if d.Body != nil {
		return string(d.Body)
	}
	return d.BodyText
}
