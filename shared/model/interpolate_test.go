package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestInterpolate(t *testing.T) {
	t.Parallel()
	runtimes := map[string]string{
		"vpc/core": `{
			"vpc_id": "vpc-0abc",
			"private_subnet_ids": ["subnet-1", "subnet-2"],
			"az_count": 3,
			"big": 12345678901234567890,
			"ratio": 0.10000000000000000555,
			"tags": {"team": "core", "cost": {"center": 42}},
			"enabled": true,
			"nothing": null,
			"html": "<a&b>"
		}`,
		"s3-bucket/logs": `{"bucket_arn": "arn:aws:s3:::logs"}`,
	}
	cases := []struct {
		name string
		cfg  string
		want string // compact JSON; "" = returned unchanged (byte for byte)
		errs []string
	}{
		{name: "no references", cfg: `{"a": 1.50, "b": "x"}`},
		{name: "other templates untouched", cfg: `{"a": "${var.x} and ${upper(x)} and ${vpc/core}"}`},
		{name: "whole string keeps string",
			cfg:  `{"vpc_id": "${vpc/core.runtime.vpc_id}"}`,
			want: `{"vpc_id":"vpc-0abc"}`},
		{name: "whole string keeps list",
			cfg:  `{"subnets": "${vpc/core.runtime.private_subnet_ids}"}`,
			want: `{"subnets":["subnet-1","subnet-2"]}`},
		{name: "whole string keeps object, number, bool, null",
			cfg:  `{"t": "${vpc/core.runtime.tags}", "n": "${vpc/core.runtime.az_count}", "e": "${vpc/core.runtime.enabled}", "z": "${vpc/core.runtime.nothing}"}`,
			want: `{"e":true,"n":3,"t":{"cost":{"center":42},"team":"core"},"z":null}`},
		{name: "numbers stay exact",
			cfg:  `{"big": "${vpc/core.runtime.big}", "r": "${vpc/core.runtime.ratio}", "own": 98765432109876543210.000}`,
			want: `{"big":12345678901234567890,"own":98765432109876543210.000,"r":0.10000000000000000555}`},
		{name: "embedded renders text",
			cfg:  `{"s": "id=${vpc/core.runtime.vpc_id};n=${vpc/core.runtime.az_count};l=${vpc/core.runtime.private_subnet_ids};o=${vpc/core.runtime.tags.cost}"}`,
			want: `{"s":"id=vpc-0abc;n=3;l=[\"subnet-1\",\"subnet-2\"];o={\"center\":42}"}`},
		{name: "embedded null and bool",
			cfg:  `{"s": "[${vpc/core.runtime.nothing}|${vpc/core.runtime.enabled}]"}`,
			want: `{"s":"[null|true]"}`},
		{name: "no HTML escaping",
			cfg:  `{"s": "${vpc/core.runtime.html}!", "w": "${vpc/core.runtime.html}"}`,
			want: `{"s":"<a&b>!","w":"<a&b>"}`},
		{name: "paths into objects and arrays",
			cfg:  `{"a": "${vpc/core.runtime.tags.cost.center}", "b": "${vpc/core.runtime.private_subnet_ids.1}", "c": "x-${vpc/core.runtime.private_subnet_ids.0}"}`,
			want: `{"a":42,"b":"subnet-2","c":"x-subnet-1"}`},
		{name: "nested values and arrays",
			cfg:  `{"functions": {"echo": {"env": ["BUCKET=${s3-bucket/logs.runtime.bucket_arn}", "${vpc/core.runtime.az_count}"]}}}`,
			want: `{"functions":{"echo":{"env":["BUCKET=arn:aws:s3:::logs",3]}}}`},
		{name: "escape is a literal",
			cfg:  `{"a": "$${vpc/core.runtime.vpc_id}", "b": "x $${y} ${vpc/core.runtime.vpc_id}", "c": "$${"}`,
			want: `{"a":"${vpc/core.runtime.vpc_id}","b":"x ${y} vpc-0abc","c":"${"}`},
		{name: "mixed with terraform template",
			cfg:  `{"a": "${var.x}-${vpc/core.runtime.vpc_id}-${path.module}", "b": "${unclosed"}`,
			want: `{"a":"${var.x}-vpc-0abc-${path.module}","b":"${unclosed"}`},
		{name: "object keys are not interpolated",
			cfg:  `{"${vpc/core.runtime.vpc_id}": "${vpc/core.runtime.vpc_id}"}`,
			want: `{"${vpc/core.runtime.vpc_id}":"vpc-0abc"}`},
		{name: "missing runtime",
			cfg:  `{"x": {"y": ["${lambda/api.runtime.arn}"]}}`,
			errs: []string{"${lambda/api.runtime.arn} at /x/y/0", "lambda/api has no runtime"}},
		{name: "missing key, all errors reported with pointers",
			cfg: `{"a/b": "p-${vpc/core.runtime.nope}", "c~d": "${vpc/core.runtime.tags.nope}", "e": "${vpc/core.runtime.private_subnet_ids.7}", "f": "${vpc/core.runtime.vpc_id.x}"}`,
			errs: []string{
				`${vpc/core.runtime.nope} at /a~1b: the runtime of vpc/core has no key "nope"`,
				`${vpc/core.runtime.tags.nope} at /c~0d: vpc/core.runtime.tags has no key "nope"`,
				`${vpc/core.runtime.private_subnet_ids.7} at /e: vpc/core.runtime.private_subnet_ids is an array of 2`,
				`${vpc/core.runtime.vpc_id.x} at /f: vpc/core.runtime.vpc_id is a string`,
			}},
		{name: "runtime read error",
			cfg:  `{"a": "${broken/x.runtime.k}"}`,
			errs: []string{"${broken/x.runtime.k} at /a: reading the runtime of broken/x: store unavailable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := map[string]int{}
			rt := func(ref string) (map[string]any, error) {
				calls[ref]++
				if ref == "broken/x" {
					return nil, errors.New("store unavailable")
				}
				raw, ok := runtimes[ref]
				if !ok {
					return nil, nil
				}
				dec := json.NewDecoder(strings.NewReader(raw))
				dec.UseNumber()
				var m map[string]any
				if err := dec.Decode(&m); err != nil {
					t.Fatal(err)
				}
				return m, nil
			}
			got, err := Interpolate(json.RawMessage(tc.cfg), rt)
			for ref, n := range calls {
				if n != 1 {
					t.Errorf("runtime(%q) called %d times, want once", ref, n)
				}
			}
			if len(tc.errs) > 0 {
				if err == nil {
					t.Fatalf("no error, got %s", got)
				}
				msg := err.Error()
				last := -1
				for _, want := range tc.errs {
					i := strings.Index(msg, want)
					if i < 0 || i < last {
						t.Fatalf("error %q\ndoes not contain %q (in order)", msg, want)
					}
					last = i
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if !bytes.Equal(got, []byte(tc.cfg)) {
					t.Fatalf("config changed:\n got %s\nwant %s (unchanged)", got, tc.cfg)
				}
				return
			}
			if string(got) != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestInterpolateBadJSON(t *testing.T) {
	t.Parallel()
	_, err := Interpolate(json.RawMessage(`{"a": "${vpc/core.runtime.x}"`), func(string) (map[string]any, error) { return nil, nil })
	if err == nil || !strings.Contains(err.Error(), "decoding config") {
		t.Fatalf("want a decoding error, got %v", err)
	}
}
