package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/api/client"
)

// karma rollback, karma promote and karma promote status through a running Karma's API
// (--server): the same checks and gates, made by the server (POST /deployments/{id}/rollback,
// GET /changes/{id}/promotion, POST /changes/{id}/promote). The server resolves and plans a
// rollback by itself: its plans are read with 'karma changes <id> --server' and approved with
// 'karma apply <id> --server'.

// remoteNotFound turns the server's 404 into a usage error (exit 2), as an unknown id is locally.
func remoteNotFound(c *cobra.Command, err error) error {
	if client.IsStatus(err, http.StatusNotFound) {
		return &usageError{cmd: c.CommandPath(), err: err}
	}
	return err
}

func remoteRollback(ctx context.Context, c *cobra.Command, cl *client.Client, id string) error {
	r, err := cl.Rollback(ctx, id)
	if err != nil {
		return remoteNotFound(c, err)
	}
	from := "nothing Karma applied"
	if r.Replaces != "" {
		from = r.Replaces
	}
	w := c.OutOrStdout()
	fmt.Fprintf(w, "rolling %s back from %s to %s (the config of commit %.12s) as change %s,\n  built at the head commit %.12s: %s may be affected\n",
		r.Component, from, r.Deployment, r.Commit, r.ChangeID, r.Head, strings.Join(r.Affected, ", "))
	fmt.Fprintf(w, "its plans, once made: karma changes %s --server …; to approve them: karma apply %s --server …\n", r.ChangeID, r.ChangeID)
	return nil
}

func remotePromotionStatus(ctx context.Context, c *cobra.Command, cl *client.Client, id string, asJSON bool) error {
	r, err := cl.Promotion(ctx, id)
	if err != nil {
		return remoteNotFound(c, err)
	}
	if asJSON {
		return writeJSON(c.OutOrStdout(), r)
	}
	printPromotion(c.OutOrStdout(), *r, time.Now())
	return nil
}

func remotePromote(ctx context.Context, c *cobra.Command, cl *client.Client, id, reason string) error {
	reply, err := cl.Promote(ctx, id, reason)
	if err != nil {
		return remoteNotFound(c, err)
	}
	if reply.Pending > 0 {
		fmt.Fprintf(c.OutOrStdout(), "approval recorded; the approval gate needs %d more approval(s) from other people\n", reply.Pending)
	} else {
		fmt.Fprintf(c.OutOrStdout(), "passed the %s gate\n", reply.Moved)
	}
	printPromotion(c.OutOrStdout(), reply.Status, time.Now())
	return nil
}
