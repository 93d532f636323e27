package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/usekarma/karma/shared/queue"
)

func newDLQCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq",
		Short: "Dead-letter queues: messages that could not be processed, with why",
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	var queue string
	list := &cobra.Command{
		Use:   "list [--queue STAGE]",
		Short: "List dead letters with their reasons",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			n := 0
			for _, q := range queuesOf(queue) {
				ds, err := st.deadLetters().ListDead(c.Context(), q)
				if err != nil {
					return err
				}
				for _, d := range ds {
					n++
					fmt.Fprintf(c.OutOrStdout(), "%s  %-12s %s (received %d times)\n    %.200s\n", d.DeadAt.Format("2006-01-02 15:04:05"), q, d.Reason, d.ReceiveCount, d.Body)
				}
			}
			fmt.Fprintf(c.OutOrStdout(), "%d dead letter(s)\n", n)
			return nil
		},
	}
	redrive := &cobra.Command{
		Use:   "redrive [--queue STAGE]",
		Short: "Move dead letters back to their queues (after fixing what made them fail)",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			total := 0
			for _, q := range queuesOf(queue) {
				n, err := st.deadLetters().Redrive(c.Context(), q)
				if err != nil {
					return err
				}
				total += n
			}
			fmt.Fprintf(c.OutOrStdout(), "%d message(s) redriven; run karma plan or karma apply to process them\n", total)
			return nil
		},
	}
	for _, cmd := range []*cobra.Command{list, redrive} {
		cmd.Flags().StringVar(&queue, "queue", "", "one stage's queue (default: all)")
	}
	c.AddCommand(list, redrive)
	return c
}

func queuesOf(q string) []string {
	if q != "" {
		return []string{q}
	}
	return stageNames
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
