package deploy

import (
	"strings"
	"testing"
)

// TestLedgerKeysAreTheTemplates: each ledger resource's keys are the ones
// the template grants on, so an error naming a grant names the template's.
func TestLedgerKeysAreTheTemplates(t *testing.T) {
	for r, keys := range LedgerKeys {
		if !strings.Contains(string(Template), "${LedgerPrefix}"+keys) {
			t.Errorf("%s: the template grants nothing on ${LedgerPrefix}%s", r, keys)
		}
	}
}

func TestLedgerGrant(t *testing.T) {
	for _, c := range []struct {
		op, key string
		action  string
		on      Resource
		keys    string
	}{
		{"ListObjectsV2", "runs/", "s3:ListBucket", LedgerBucket, ""},
		{"PutObject", "runs/20261207-1/run.json", "s3:PutObject", LedgerRuns, "runs/*/run.json"},
		{"PutObject", "runs/20261207-1/sent/000001.json", "s3:PutObject", LedgerSent, "runs/*/sent/*"},
		{"PutObject", "runs/r/done/w-1/000001.json", "s3:PutObject", LedgerEntries, "runs/*/done/*"},
		{"PutObject", "workers/w-1.json", "s3:PutObject", LedgerWorkers, "workers/*"},
		{"GetObject", "pace/a%2F.json", "s3:GetObject", LedgerPace, "pace/*"},
		{"DeleteObject", "pace/workers/w-1.json", "s3:DeleteObject", LedgerPace, "pace/*"},
		{"GetObject", "runs/r/follow.json", "s3:GetObject", LedgerFollow, "runs/*/follow.json"},
		{"GetObject", "somewhere/else", "s3:GetObject", LedgerObjects, "*"},
	} {
		action, on, keys := LedgerGrant(c.op, c.key)
		if action != c.action || on != c.on || keys != c.keys {
			t.Errorf("LedgerGrant(%s, %s) = %s on %s (%s), want %s on %s (%s)", c.op, c.key, action, on, keys, c.action, c.on, c.keys)
		}
	}
}
