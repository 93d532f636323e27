package terraform

// scheduled_test.go: the functions a schedule invokes (reconcile, drift, promote) are invoked
// asynchronously by EventBridge, and Lambda retries an asynchronous invocation that failed
// twice by default (1 and then 2 minutes later) and keeps one it could not start (throttled)
// for up to 6 hours. Their runs are idempotent (a promotion published twice is one change:
// resolve's key "promotion:<change set>"; a drift is recorded once, trigger.Reconciler's
// versions once), so the next scheduled run is their retry: a blind retry only runs the whole
// check again (the drift function's refresh-only plans, up to 15 minutes each time) beside the
// next scheduled run. What matters is that a failed run is seen: each has an alarm on its
// Errors, notifying var.alarm_actions like the queues' alarms.

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// Lambda's bounds of maximum_event_age_in_seconds.
const (
	minEventAge = 60
	maxEventAge = 21600
)

var rateRE = regexp.MustCompile(`^rate\((\d+) (minute|hour|day)s?\)$`)

// scheduleInterval is the interval of a rate() schedule expression in seconds (0: a cron()
// expression, whose interval varies).
func scheduleInterval(expr string) int64 {
	sub := rateRE.FindStringSubmatch(expr)
	if sub == nil {
		return 0
	}
	n, _ := strconv.ParseInt(sub[1], 10, 64)
	return n * map[string]int64{"minute": 60, "hour": 3600, "day": 86400}[sub[2]]
}

// TestScheduledFunctionsRunOnceAndFailLoudly: every function a schedule invokes has an
// aws_lambda_function_event_invoke_config with no retries and an event age of at most its
// schedule's interval (a run held back longer is superseded by the next), and an alarm on its
// Errors notifying var.alarm_actions.
func TestScheduledFunctionsRunOnceAndFailLoudly(t *testing.T) {
	for _, sc := range []struct {
		name      string
		schedules map[string]string
	}{
		{"the default schedules", nil},
		{"other schedules", map[string]string{"promote_schedule": "rate(10 minutes)", "reconcile_schedule": "rate(2 hours)", "drift_schedule": "cron(0 3 * * ? *)"}},
		{"a daily drift check", map[string]string{"drift_schedule": "rate(1 day)"}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			vars := testVars()
			vars["alarm_actions"] = cty.ListVal([]cty.Value{cty.StringVal("arn:aws:sns:eu-west-1:123456789012:karma-alarms")})
			for k, v := range sc.schedules {
				vars[k] = cty.StringVal(v)
			}
			checkScheduled(t, loadWith(t, moduleDir(), vars))
		})
	}
}

// stringsOf is a known list of strings as a Go slice.
func stringsOf(t tb, v cty.Value, what string) []string {
	t.Helper()
	if !v.IsWhollyKnown() || v.IsNull() || !v.CanIterateElements() {
		t.Fatalf("%s: want a known list of strings, got %#v", what, v)
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		s, err := str(e, what)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// functionAt is the function instance at address addr.
func (d *deployment) functionAt(t tb, addr string) instance {
	t.Helper()
	for _, f := range d.functions {
		if f.inst.addr == addr {
			return f.inst
		}
	}
	t.Fatalf("no function %s", addr)
	return instance{}
}

func checkScheduled(t tb, d *deployment) {
	t.Helper()
	scheduled := map[string]string{} // function instance address -> its schedule expression
	for _, r := range d.rules(t) {
		v, ok, err := d.m.arg(r.inst, "schedule_expression")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		expr, err := str(v, r.inst.addr+".schedule_expression")
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range r.targets {
			arn, _, err := d.m.arg(tg.inst, "arn")
			if err != nil {
				t.Fatal(err)
			}
			if fn, a, ok := d.m.ref(arn); ok && strings.HasPrefix(fn.addr, "aws_lambda_function.") && a == "arn" {
				scheduled[fn.addr] = expr
				// EventBridge retries a delivery it could not make for 24 hours by default
				// before its dead-letter queue (and that queue's alarm) gets it.
				v, ok, err := d.m.arg(tg.inst, "retry_policy", "maximum_event_age_in_seconds")
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					t.Errorf("%s: no retry_policy: EventBridge retries a run it cannot deliver to %s for 24 hours (its default) before it is dead-lettered and anyone told", tg.inst.addr, fn.addr)
				} else if age, iv := mustInt(t, v, tg.inst.addr+".retry_policy.maximum_event_age_in_seconds"), scheduleInterval(expr); iv > 0 && age > max(iv, minEventAge) {
					t.Errorf("%s: retry_policy.maximum_event_age_in_seconds = %d, over the interval of its schedule %q (%d s)", tg.inst.addr, age, expr, iv)
				}
			}
		}
	}
	for _, stage := range []string{"reconcile", "drift", "promote"} {
		f, ok := d.functions[stage]
		if !ok {
			t.Fatalf("no %s function with the test's variables", stage)
		}
		if _, ok := scheduled[f.inst.addr]; !ok {
			t.Errorf("function %s is invoked by no schedule", f.inst.addr)
		}
	}

	// The function each instance of typ names in attr (its function_name or arn).
	byFunction := func(typ string, path ...string) map[string][]instance {
		out := map[string][]instance{}
		ins, err := d.m.allInstances(typ)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range ins {
			v, ok, err := d.m.arg(in, path...)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			if fn, a, ok := d.m.ref(v); ok && strings.HasPrefix(fn.addr, "aws_lambda_function.") && (a == "function_name" || a == "arn") {
				out[fn.addr] = append(out[fn.addr], in)
			}
		}
		return out
	}
	configs := byFunction("aws_lambda_function_event_invoke_config", "function_name")
	wantActions := stringsOf(t, d.m.vars["alarm_actions"], "var.alarm_actions")

	errorAlarms := map[string][]instance{}
	alarms, err := d.m.allInstances("aws_cloudwatch_metric_alarm")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alarms {
		ns, _, err := d.m.arg(a, "namespace")
		if err != nil {
			t.Fatal(err)
		}
		metric, _, err := d.m.arg(a, "metric_name")
		if err != nil {
			t.Fatal(err)
		}
		if !ns.RawEquals(cty.StringVal("AWS/Lambda")) || !metric.RawEquals(cty.StringVal("Errors")) {
			continue
		}
		dims, ok, err := d.m.arg(a, "dimensions")
		if err != nil || !ok || !dims.CanIterateElements() {
			t.Fatalf("%s.dimensions: %#v %v", a.addr, dims, err)
		}
		if v, ok := dims.AsValueMap()["FunctionName"]; ok {
			if fn, attr, ok := d.m.ref(v); ok && strings.HasPrefix(fn.addr, "aws_lambda_function.") && attr == "function_name" {
				errorAlarms[fn.addr] = append(errorAlarms[fn.addr], a)
			}
		}
	}

	for _, fn := range slices.Sorted(maps.Keys(scheduled)) {
		expr := scheduled[fn]
		cs := configs[fn]
		switch len(cs) {
		case 0:
			t.Errorf("function %s is invoked asynchronously by the schedule %q and has no aws_lambda_function_event_invoke_config: Lambda retries a failed run twice, 1 and 2 minutes later, beside the next scheduled run, and keeps a run it could not start for 6 hours", fn, expr)
		case 1:
			c := cs[0]
			if v, ok, err := d.m.arg(c, "maximum_retry_attempts"); err != nil {
				t.Fatal(err)
			} else if !ok {
				t.Errorf("%s: maximum_retry_attempts is not set: Lambda retries a failed run of %s twice (its default); the next scheduled run is its retry", c.addr, fn)
			} else if n := mustInt(t, v, c.addr+".maximum_retry_attempts"); n != 0 {
				t.Errorf("%s: maximum_retry_attempts = %d, want 0: a failed run of %s is run again blindly beside the next scheduled one (%q)", c.addr, n, fn, expr)
			}
			v, ok, err := d.m.arg(c, "maximum_event_age_in_seconds")
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Errorf("%s: maximum_event_age_in_seconds is not set: a run of %s Lambda could not start is kept 6 hours (its default) and started after the next scheduled ones", c.addr, fn)
				break
			}
			age := mustInt(t, v, c.addr+".maximum_event_age_in_seconds")
			if age < minEventAge || age > maxEventAge {
				t.Errorf("%s: maximum_event_age_in_seconds = %d, Lambda takes %d to %d", c.addr, age, minEventAge, maxEventAge)
			}
			if iv := scheduleInterval(expr); iv > 0 && age > max(iv, minEventAge) {
				t.Errorf("%s: maximum_event_age_in_seconds = %d, over the interval of its schedule %q (%d s): a run held back would start after the next one is due", c.addr, age, expr, iv)
			}
		default:
			t.Errorf("function %s has %d aws_lambda_function_event_invoke_config", fn, len(cs))
		}

		as := errorAlarms[fn]
		if len(as) == 0 {
			t.Errorf("function %s (schedule %q) has no alarm on its Errors: a failed run would be seen by no one", fn, expr)
		}
		timeout := mustInt(t, mustArg(t, d, d.functionAt(t, fn), "timeout"), fn+".timeout")
		for _, a := range as {
			// Lambda stamps an invocation's metrics with its start and sends them when it ends, up
			// to the function's timeout later: the alarm must still be looking at that period
			// then, and fire on that one datapoint.
			period := mustInt(t, mustArg(t, d, a, "period"), a.addr+".period")
			periods := mustInt(t, mustArg(t, d, a, "evaluation_periods"), a.addr+".evaluation_periods")
			if periods*period < timeout+period {
				t.Errorf("%s: it looks at the last %d s (%d periods of %d s), but Lambda stamps an error of %s with the run's start and sends it when the run ends, up to %d s (its timeout) later: want at least %d s", a.addr, periods*period, periods, period, fn, timeout, timeout+period)
			}
			toAlarm := periods
			if v, ok, err := d.m.arg(a, "datapoints_to_alarm"); err != nil {
				t.Fatal(err)
			} else if ok {
				toAlarm = mustInt(t, v, a.addr+".datapoints_to_alarm")
			}
			if toAlarm != 1 {
				t.Errorf("%s: it fires on %d of its %d periods, want one: a scheduled run fails once", a.addr, toAlarm, periods)
			}
			op := d.mustString(t, a, "comparison_operator")
			th, _, err := d.m.arg(a, "threshold")
			if err != nil {
				t.Fatal(err)
			}
			n := mustInt(t, th, a.addr+".threshold")
			if !(op == "GreaterThanThreshold" && n == 0) && !(op == "GreaterThanOrEqualToThreshold" && n == 1) {
				t.Errorf("%s: %s %d: want it to fire on one error", a.addr, op, n)
			}
			for _, attr := range []string{"alarm_actions", "ok_actions"} {
				v, ok, err := d.m.arg(a, attr)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				if ok {
					got = stringsOf(t, v, a.addr+"."+attr)
				}
				if !slices.Equal(got, wantActions) {
					t.Errorf("%s: %s %v, want var.alarm_actions %v", a.addr, attr, got, wantActions)
				}
			}
		}
	}
}

// TestScheduleExpressionsAreOnesEventBridgeTakes: EventBridge refuses, at apply, a schedule
// expression that is not rate(<n> <unit>) — the unit singular for 1 and plural above — or
// cron(<6 fields>): the apply would stop half-way, the rule not created. The schedule
// variables refuse such a value at plan.
func TestScheduleExpressionsAreOnesEventBridgeTakes(t *testing.T) {
	good := []string{"rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(12 hours)", "rate(1 day)", "rate(7 days)", "cron(0 3 * * ? *)", "cron(0/15 8-17 ? * MON-FRI *)"}
	bad := []string{"rate(5 minute)", "rate(1 minutes)", "rate(0 minutes)", "rate(5 mins)", "rate(1 week)", "every 5 minutes", "cron(0 3 * * ?)", "cron()", " rate(1 hour)", "rate(1 hour) "}
	for _, name := range []string{"promote_schedule", "reconcile_schedule", "drift_schedule"} {
		for _, expr := range append(slices.Clone(good), bad...) {
			vars := testVars()
			vars[name] = cty.StringVal(expr)
			m, err := loadModule(moduleDir(), vars)
			if err != nil {
				t.Fatal(err)
			}
			ok := true
			for _, cond := range m.validations[name] {
				v, err := m.eval(cond, nil)
				if err != nil {
					t.Fatalf("%s = %q: %v", name, expr, err)
				}
				ok = ok && v.True()
			}
			if want := slices.Contains(good, expr); ok != want {
				t.Errorf("%s = %q: accepted %v, want %v (EventBridge %s it)", name, expr, ok, want, map[bool]string{true: "takes", false: "refuses"}[want])
			}
		}
	}
}
