package deploy

import (
	"regexp"
	"strings"
)

// LedgerKeys are the keys under the ledger's prefix that each ledger
// resource names: the template's ARNs end with them (after
// ${LedgerPrefix}), and the ledger's errors name the grant a refused call
// needs with them (LedgerGrant).
var LedgerKeys = map[Resource]string{
	LedgerObjects:     "*",
	LedgerRuns:        "runs/*/run.json",
	LedgerSent:        "runs/*/sent/*",
	LedgerEntries:     "runs/*/done/*",
	LedgerResults:     "runs/*/results/*",
	LedgerFollow:      "runs/*/follow.json",
	LedgerMarks:       "runs/*/marks/*",
	LedgerWorkers:     "workers/*",
	LedgerCheckpoints: "checkpoints/*",
	LedgerFleetHolds:  "fleet/*",
	LedgerPace:        "pace/*",
}

// S3Action is the IAM action an S3 operation of Calls needs on a bucket or
// its objects (not a KMS key's): ListObjectsV2 needs s3:ListBucket,
// GetObject s3:GetObject. "" for an operation Calls does not list.
func S3Action(op string) string {
	for _, c := range Calls {
		if c.Service != "s3" || c.Op != op {
			continue
		}
		for _, a := range c.Actions {
			if strings.HasPrefix(a, "s3:") {
				return a
			}
		}
	}
	return ""
}

// LedgerGrant is what a call of op on key (under the ledger's prefix; for a
// listing, the prefix listed) needs: the IAM action, the ledger resource it
// is granted on, and that resource's keys (LedgerKeys) under the prefix. A
// listing needs its action on the ledger's bucket (keys "").
func LedgerGrant(op, key string) (action string, on Resource, keys string) {
	action = S3Action(op)
	if op == "ListObjectsV2" {
		return action, LedgerBucket, ""
	}
	on, keys = LedgerObjects, LedgerKeys[LedgerObjects]
	for r, k := range LedgerKeys {
		if len(k) > len(keys) && iamPattern(k).MatchString(key) {
			on, keys = r, k
		}
	}
	return action, on, keys
}

// iamPattern matches as an IAM resource's wildcard does: * is any run of
// characters, slashes included.
func iamPattern(p string) *regexp.Regexp {
	return regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, ".*") + "$")
}
