package eventbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/usekarma/karma/shared/pipeline"
)

// Rule is one EventBridge rule and its SQS target.
type Rule struct {
	Name    string // unique on its bus, e.g. "karma-to-plan"
	Bus     string
	Stage   string // the stage whose queue it feeds
	Pattern string // the event pattern, JSON
	Target  Target
}

// Target is an SQS queue a rule delivers to.
type Target struct {
	ID  string // unique within the rule
	ARN string // the queue's ARN
	// MessageGroupID is set for FIFO queues (ARN ending in ".fifo"): EventBridge takes a fixed
	// group per target only, "karma-<stage>" here (see the package doc).
	MessageGroupID string
}

// pattern is an EventBridge event pattern on source and detail-type.
type pattern struct {
	Source     []string `json:"source"`
	DetailType []string `json:"detail-type,omitempty"`
}

// Rules derives the routing of bus from pipeline.Routes: for every stage a message type is
// routed to, a rule matching source "karma" and exactly those types, and a rule sending every
// "karma" event to the audit queue. queueARN names each stage's queue. Rules are sorted by
// stage, audit last.
func Rules(bus string, queueARN func(stage string) string) []Rule {
	byStage := map[string][]string{}
	for typ, stages := range pipeline.Routes {
		for _, st := range stages {
			byStage[st] = append(byStage[st], typ)
		}
	}
	stages := make([]string, 0, len(byStage))
	for st := range byStage {
		stages = append(stages, st)
	}
	slices.Sort(stages)
	rule := func(stage string, p pattern) Rule {
		b, _ := json.Marshal(p)
		arn := queueARN(stage)
		t := Target{ID: "queue-" + stage, ARN: arn}
		if strings.HasSuffix(arn, ".fifo") {
			t.MessageGroupID = "karma-" + stage
		}
		return Rule{Name: "karma-to-" + stage, Bus: bus, Stage: stage, Pattern: string(b), Target: t}
	}
	out := make([]Rule, 0, len(stages)+1)
	for _, st := range stages {
		types := byStage[st]
		slices.Sort(types)
		out = append(out, rule(st, pattern{Source: []string{Source}, DetailType: types}))
	}
	return append(out, rule(pipeline.StageAudit, pattern{Source: []string{Source}}))
}

// EnsureRules creates (or updates) the buses, rules and SQS targets of rules. Creating the
// "default" bus is skipped: it always exists. In AWS each target queue also needs a policy
// allowing events.amazonaws.com to sqs:SendMessage with aws:SourceArn = the rule's ARN; moto
// does not check it, and Terraform owns it (aws_sqs_queue_policy).
func EnsureRules(ctx context.Context, client *awseb.Client, rules []Rule) error {
	buses := map[string]bool{}
	for _, r := range rules {
		if r.Bus == "" || r.Bus == "default" || buses[r.Bus] {
			continue
		}
		buses[r.Bus] = true
		_, err := client.CreateEventBus(ctx, &awseb.CreateEventBusInput{Name: aws.String(r.Bus)})
		var exists *types.ResourceAlreadyExistsException
		if err != nil && !errors.As(err, &exists) {
			return fmt.Errorf("eventbridge: create bus %s: %w", r.Bus, err)
		}
	}
	for _, r := range rules {
		if r.Target.ARN == "" {
			return fmt.Errorf("eventbridge: rule %s has no target queue", r.Name)
		}
		_, err := client.PutRule(ctx, &awseb.PutRuleInput{
			Name:         aws.String(r.Name),
			EventBusName: aws.String(r.Bus),
			EventPattern: aws.String(r.Pattern),
			State:        types.RuleStateEnabled,
			Description:  aws.String("Karma: route events to the " + r.Stage + " queue"),
		})
		if err != nil {
			return fmt.Errorf("eventbridge: put rule %s on %s: %w", r.Name, r.Bus, err)
		}
		t := types.Target{Id: aws.String(r.Target.ID), Arn: aws.String(r.Target.ARN)}
		if r.Target.MessageGroupID != "" {
			t.SqsParameters = &types.SqsParameters{MessageGroupId: aws.String(r.Target.MessageGroupID)}
		}
		out, err := client.PutTargets(ctx, &awseb.PutTargetsInput{Rule: aws.String(r.Name), EventBusName: aws.String(r.Bus), Targets: []types.Target{t}})
		if err != nil {
			return fmt.Errorf("eventbridge: put target of rule %s: %w", r.Name, err)
		}
		if out.FailedEntryCount > 0 && len(out.FailedEntries) > 0 {
			f := out.FailedEntries[0]
			return fmt.Errorf("eventbridge: put target of rule %s: %s: %s", r.Name, aws.ToString(f.ErrorCode), aws.ToString(f.ErrorMessage))
		}
	}
	return nil
}
