package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
)

// The CLI's decisions on change sets — approvals (karma apply), rejections (karma reject,
// changescmd.go) and expiry (karma expire, and every plan and apply) — go through the
// implementations the API uses (changeset.Approve, changeset.RejectChange, changeset.Sweep), on whatever
// backend the configuration names. Like the API's api.* entries, each decision by a person is
// audited with them in the change's chain: cli.change_approved (also an approval that counts
// toward several needed), cli.approval_refused (separation of duties), cli.change_rejected.

// CLI audit entry types.
const (
	EntryCLIApproved        = "cli.change_approved"
	EntryCLIApprovalRefused = "cli.approval_refused"
	EntryCLIRejected        = "cli.change_rejected"
)

// cliEntry is the body of a CLI audit entry.
type cliEntry struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	OccurredAt string         `json:"occurred_at"`
	Actor      message.Actor  `json:"actor"`
	Detail     map[string]any `json:"detail"`
}

// record appends a CLI decision about cs by who to the audit log, in the change's chain.
func (st *stack) record(ctx context.Context, typ, who string, cs *changeset.ChangeSet, detail map[string]any) error {
	id := uuid.Must(uuid.NewV7()).String()
	now := time.Now().UTC().Truncate(time.Millisecond)
	actor := message.Actor{Kind: "cli", Name: who}
	detail["change_set_id"] = cs.ID
	body, err := json.Marshal(cliEntry{ID: id, Type: typ, OccurredAt: now.Format("2006-01-02T15:04:05.000Z07:00"), Actor: actor, Detail: detail})
	if err != nil {
		return err
	}
	rec := audit.Record{MessageID: id, Type: typ, Version: 1, Env: cs.Env, Chain: "change/" + cs.CorrelationID, CorrelationID: cs.CorrelationID,
		ActorKind: actor.Kind, Actor: who, OccurredAt: now, Body: body}
	if _, err := st.audit.Append(ctx, rec); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// approveOne approves change set id as by, for the plans seen — each component whose plan was
// shown held for review, to the plan's hash (showPlans) — publishes what it releases, audits the
// decision and says where the change set stands. As POST /changes/{id}/approve with plans, it is
// refused (changeset.ErrPlansChanged: exit 1, nothing approved) when a plan held now is not one
// shown — made again by another process after they were shown — or, before the change set is
// approved, a deployment is still being planned. A refused approver is audited, then returned as
// the error.
func (st *stack) approveOne(ctx context.Context, w io.Writer, id, by string, seen map[string]string) error {
	if seen == nil {
		seen = map[string]string{} // nil would approve whatever is held: the CLI approves only what it showed
	}
	a, err := changeset.ApproveSeenAt(ctx, st.changeSets, id, by, time.Now().UTC(), seen)
	if errors.Is(err, changeset.ErrPlansChanged) {
		return fmt.Errorf("%w; nothing approved: 'karma apply %s' shows the plans held now and approves those", err, id)
	}
	var ineligible *changeset.IneligibleError
	if errors.As(err, &ineligible) {
		cs, gerr := st.changeSets.Get(ctx, id)
		if gerr != nil {
			return errors.Join(err, gerr)
		}
		if aerr := st.record(ctx, EntryCLIApprovalRefused, by, cs, map[string]any{"reason": err.Error(), "role": ineligible.Role, "name": ineligible.Name}); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	if err != nil {
		return err
	}
	if err := st.publish(ctx, a.Messages...); err != nil {
		return err
	}
	cs := a.ChangeSet
	if err := st.record(ctx, EntryCLIApproved, by, cs, a.Detail()); err != nil {
		return err
	}
	if a.Pending > 0 {
		fmt.Fprintf(w, "change %s: approval by %s recorded (%d of %d); it waits for %d more from someone else\n", cs.ID, by, len(cs.Approvals), cs.Required(), a.Pending)
	}
	return nil
}

func newExpireCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "expire",
		Short: "Expire the change sets not approved within their environment's approval expiry",
		Long: `Publishes change.expired for every change set past its environment's approval_expiry (karma.json)
that is not approved: resolve skips what is left of it (reason "expired") and starts the change
sets queued behind it. karma plan, karma apply and karma serve do this by themselves; on AWS
without karma serve, run it on a schedule. An expired change set is never approved, swept or not.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			s, st, err := g.openStack(c.Context())
			if err != nil {
				return err
			}
			defer s.close()
			n, err := st.sweep(c.Context(), c.OutOrStdout())
			if err == nil && n == 0 {
				fmt.Fprintln(c.OutOrStdout(), "no change set to expire")
			}
			return err
		},
	}
}

// sweep publishes change.expired for the change sets past their approval expiry, and says which.
func (st *stack) sweep(ctx context.Context, w io.Writer) (int, error) {
	msgs, err := changeset.Sweep(ctx, st.changeSets, time.Now)
	if err != nil {
		return 0, err
	}
	if err := st.publish(ctx, msgs...); err != nil {
		return 0, err
	}
	for _, m := range msgs {
		var p message.ChangeExpired
		if err := message.Decode(m, &p); err != nil {
			return 0, err
		}
		fmt.Fprintf(w, "change %s expired at %s without its approvals: what is left of it is skipped\n", p.ChangeSetID, p.ExpiresAt.Format(time.RFC3339))
	}
	return len(msgs), nil
}
