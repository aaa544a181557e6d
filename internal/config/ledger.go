package config

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/s3clone/s3clone/deploy"
	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// Ledger is the --ledger flag: where runs are recorded.
type Ledger struct {
	Raw string
	Loc plan.Location
}

// Register defines --ledger; what says what the command does with it.
func (l *Ledger) Register(f *cli.Flags, what string) {
	f.StringVar(&l.Raw, "ledger", "", "the run ledger, s3://BUCKET/PREFIX/ (docs/design.md, \"The run ledger\"): "+what)
}

// Validate parses the flag; required adds a problem when it is missing.
func (l *Ledger) Validate(p *cli.Problems, required bool) {
	if l.Raw == "" {
		if required {
			p.Addf("--ledger is required: s3://BUCKET/PREFIX/ where runs are recorded (the stack's LedgerUrl output)")
		}
		return
	}
	loc, err := plan.ParseLocation(l.Raw)
	if err != nil {
		p.Addf("--ledger: %v", err)
		return
	}
	if loc.Prefix != "" && !strings.HasSuffix(loc.Prefix, "/") {
		loc.Prefix += "/"
	}
	l.Loc = loc
}

// Set reports whether --ledger was given.
func (l *Ledger) Set() bool { return l.Loc.Bucket != "" }

// CheckApart adds a problem when the ledger lies inside what is copied or
// written: a plan would copy it, and --delete would delete it.
func (l *Ledger) CheckApart(p *cli.Problems, flag string, loc plan.Location) {
	if !l.Set() || loc.Bucket != l.Loc.Bucket {
		return
	}
	if strings.HasPrefix(l.Loc.Prefix, loc.Prefix) || strings.HasPrefix(loc.Prefix, l.Loc.Prefix) {
		p.Addf("--ledger %s overlaps --%s %s: keep the ledger outside what is copied, e.g. another bucket or prefix", l.Loc, flag, loc)
	}
}

// Store returns the ledger through api.
func (l *Ledger) Store(api ledger.API) *ledger.Store {
	return ledger.New(api, l.Loc.Bucket, l.Loc.Prefix)
}

// Open returns the ledger through a client of its bucket's region. A
// region it cannot find (a missing bucket, say) leaves the configured
// region's client, whose first call then says what is wrong.
func (l *Ledger) Open(ctx context.Context, regions *Regions) *ledger.Store {
	region, err := regions.Region(ctx, l.Loc.Bucket, "")
	if err != nil {
		region = regions.cfg.Region
	}
	return l.Store(regions.Client(region))
}

// LedgerError turns a ledger error met at start-up into a cli.UsageError saying
// what to fix: for a refusal, the grant the refused call needs (Grant), and
// the hint, if given (what else the same step needs). Other errors pass
// through.
func LedgerError(err error, store *ledger.Store, hint ...string) error {
	var denied *ledger.AccessError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrNoBucket):
		return cli.Usagef("--ledger %s: bucket %q does not exist: create it (aws s3 mb s3://%s) or use the stack's LedgerUrl output (nothing was enqueued)",
			store, store.Bucket(), store.Bucket())
	case errors.As(err, &denied):
		grant := Grant(denied)
		if len(hint) > 0 && hint[0] != "" {
			grant += "; " + strings.Join(hint, " ")
		}
		return cli.Usagef("--ledger %s: access denied: grant %s (nothing was enqueued)", store, grant)
	case unreachable(err):
		return cli.Usagef("--ledger: cannot reach S3: check --s3-endpoint or $AWS_ENDPOINT_URL_S3, and the network (%v)", err)
	}
	return fmt.Errorf("--ledger %s: %w", store, err)
}

// LedgerARN is the ARN of keys under the ledger, for messages naming a grant.
func LedgerARN(store *ledger.Store, rest string) string {
	return "arn:aws:s3:::" + store.Bucket() + "/" + store.Prefix() + rest
}

// Grant is the permission a refused ledger call needs, as deploy.Calls
// lists it: "s3:PutObject on arn:aws:s3:::B/P/runs/*/run.json", or
// "s3:ListBucket on arn:aws:s3:::B" for a listing.
func Grant(e *ledger.AccessError) string {
	action, on, keys := deploy.LedgerGrant(e.Op, e.Key)
	arn := "arn:aws:s3:::" + e.Bucket
	if on != deploy.LedgerBucket {
		arn += "/" + e.Prefix + keys
	}
	return action + " on " + arn
}
