package follow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// NotifyAPI is what follow asks of S3 to have a bucket send it events.
type NotifyAPI interface {
	GetBucketNotificationConfiguration(ctx context.Context, in *s3.GetBucketNotificationConfigurationInput, optFns ...func(*s3.Options)) (*s3.GetBucketNotificationConfigurationOutput, error)
	PutBucketNotificationConfiguration(ctx context.Context, in *s3.PutBucketNotificationConfigurationInput, optFns ...func(*s3.Options)) (*s3.PutBucketNotificationConfigurationOutput, error)
}

// Events are the event types follow asks for: every way a key's content,
// tags or presence changes. Deletions by a lifecycle rule are
// LifecycleExpiration events, not ObjectRemoved ones (the S3 user guide,
// "Supported event types for SQS, SNS, and Lambda").
var Events = []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectTagging:*", "s3:LifecycleExpiration:*"}

// Subscription is follow's queue configuration in a source bucket: events
// of keys under Prefix, and of cutover markers under Marks, go to the queue
// QueueARN, under configuration ids drawn from ID.
type Subscription struct {
	Bucket, Prefix, Marks, QueueARN, ID string
}

// SubscriptionID is the id follow gives its configuration for a queue: the
// same for every follow of that queue, so that a restarted follow finds its
// own and Unsubscribe removes only it.
func SubscriptionID(queueARN string) string {
	name := queueARN[strings.LastIndex(queueARN, ":")+1:]
	return "s3clone-follow-" + name
}

// configs are the queue configurations sub needs: one for its prefix, and
// one for the markers when they are outside it (two configurations may
// share a queue and event types for prefixes that do not overlap).
func (sub Subscription) configs() []types.QueueConfiguration {
	one := func(id, prefix string) types.QueueConfiguration {
		q := types.QueueConfiguration{Id: aws.String(id), QueueArn: aws.String(sub.QueueARN), Events: Events}
		if prefix != "" {
			q.Filter = &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: types.FilterRuleNamePrefix, Value: aws.String(prefix)}}}}
		}
		return q
	}
	out := []types.QueueConfiguration{one(sub.ID, sub.Prefix)}
	if sub.Marks != "" && !strings.HasPrefix(sub.Marks, sub.Prefix) {
		out = append(out, one(sub.ID+"-marks", sub.Marks))
	}
	return out
}

// ours reports a configuration id of follow's for the queue id names.
func ours(id, configID string) bool { return configID == id || configID == id+"-marks" }

// ErrOverlap marks a bucket whose notification configuration already sends
// some of follow's events (for keys that overlap) elsewhere: S3 refuses two
// configurations that share an event type for overlapping keys.
var ErrOverlap = errors.New("the bucket already sends these events elsewhere")

// Subscribe has the bucket send follow's events to its queue. S3 keeps one
// notification configuration per bucket and a write replaces all of it, so
// the configuration is read, follow's own added to what is there, and
// written back whole: every other configuration (queues, topics, Lambda
// functions, EventBridge) stays as it was. It reports false when the bucket
// already had follow's configuration. A configuration of another owner
// that takes the same events for overlapping keys is an error wrapping
// ErrOverlap that names it, before anything is written. (S3 offers no
// conditional write here: a change another writer makes between the read
// and the write is lost; the window is one round trip.)
func Subscribe(ctx context.Context, api NotifyAPI, sub Subscription) (bool, error) {
	cur, err := api.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(sub.Bucket)})
	if err != nil {
		return false, fmt.Errorf("read the notification configuration of s3://%s: %w", sub.Bucket, err)
	}
	want := sub.configs()
	var have []types.QueueConfiguration
	for _, q := range cur.QueueConfigurations {
		if ours(sub.ID, aws.ToString(q.Id)) {
			have = append(have, q)
		}
	}
	if sameConfigs(have, want) {
		return false, nil
	}
	if err := overlaps(cur, sub); err != nil {
		return false, err
	}
	next := configuration(cur)
	next.QueueConfigurations = slices.DeleteFunc(next.QueueConfigurations, func(q types.QueueConfiguration) bool { return ours(sub.ID, aws.ToString(q.Id)) })
	next.QueueConfigurations = append(next.QueueConfigurations, want...)
	if _, err := api.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(sub.Bucket), NotificationConfiguration: next}); err != nil {
		return false, fmt.Errorf("write the notification configuration of s3://%s (follow's queue %s added to what was there): %w", sub.Bucket, sub.QueueARN, err)
	}
	return true, nil
}

// sameConfigs reports configurations that send the same events of the same
// keys to the same queues.
func sameConfigs(a, b []types.QueueConfiguration) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(q types.QueueConfiguration) string {
		ev := make([]string, len(q.Events))
		for i, e := range q.Events {
			ev[i] = string(e)
		}
		slices.Sort(ev)
		return aws.ToString(q.Id) + "|" + aws.ToString(q.QueueArn) + "|" + filterPrefix(q.Filter) + "|" + strings.Join(ev, ",")
	}
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// Unsubscribe removes follow's configurations (id, and its markers') from the bucket, leaving
// every other as it is now (not as it was when follow added its own: others
// may have changed it since). It reports whether there was one.
func Unsubscribe(ctx context.Context, api NotifyAPI, bucket, id string) (bool, error) {
	cur, err := api.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		return false, fmt.Errorf("read the notification configuration of s3://%s: %w", bucket, err)
	}
	next := configuration(cur)
	n := len(next.QueueConfigurations)
	next.QueueConfigurations = slices.DeleteFunc(next.QueueConfigurations, func(q types.QueueConfiguration) bool { return ours(id, aws.ToString(q.Id)) })
	if len(next.QueueConfigurations) == n {
		return false, nil
	}
	if _, err := api.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(bucket), NotificationConfiguration: next}); err != nil {
		return false, fmt.Errorf("write the notification configuration of s3://%s (follow's %s removed): %w", bucket, id, err)
	}
	return true, nil
}

// configuration is what was read, as a configuration to write back.
func configuration(cur *s3.GetBucketNotificationConfigurationOutput) *types.NotificationConfiguration {
	return &types.NotificationConfiguration{
		QueueConfigurations:          slices.Clone(cur.QueueConfigurations),
		TopicConfigurations:          cur.TopicConfigurations,
		LambdaFunctionConfigurations: cur.LambdaFunctionConfigurations,
		EventBridgeConfiguration:     cur.EventBridgeConfiguration,
	}
}

// overlaps finds a configuration other than follow's that S3 would refuse
// alongside it: one sharing an event type for overlapping keys (the S3 user
// guide, "Configuring event notifications using object key name
// filtering": configurations overlap when their event types overlap and
// both their prefix and suffix filters could match the same key).
func overlaps(cur *s3.GetBucketNotificationConfigurationOutput, sub Subscription) error {
	type other struct {
		kind, id, dest string
		events         []types.Event
		filter         *types.NotificationConfigurationFilter
	}
	var others []other
	for _, q := range cur.QueueConfigurations {
		others = append(others, other{"queue", aws.ToString(q.Id), aws.ToString(q.QueueArn), q.Events, q.Filter})
	}
	for _, t := range cur.TopicConfigurations {
		others = append(others, other{"topic", aws.ToString(t.Id), aws.ToString(t.TopicArn), t.Events, t.Filter})
	}
	for _, l := range cur.LambdaFunctionConfigurations {
		others = append(others, other{"Lambda function", aws.ToString(l.Id), aws.ToString(l.LambdaFunctionArn), l.Events, l.Filter})
	}
	for _, o := range others {
		if ours(sub.ID, o.id) {
			continue // follow's own, replaced
		}
		shared := sharedEvent(o.events, Events)
		clash := false
		for _, q := range sub.configs() {
			clash = clash || prefixesOverlap(filterPrefix(o.filter), filterPrefix(q.Filter))
		}
		if shared == "" || !clash {
			continue // follow takes every suffix, so only prefixes can keep them apart
		}
		return fmt.Errorf("%w: s3://%s sends %s for keys under %q to the %s %s (configuration %q), and S3 refuses a second configuration sharing an event type for overlapping keys; "+
			"send those events to an SNS topic that fans out to both, or follow through EventBridge", ErrOverlap, sub.Bucket, shared, filterPrefix(o.filter), o.kind, o.dest, o.id)
	}
	return nil
}

// sharedEvent is an event type both lists take, "" if none: equal, or one
// a wildcard of the other's family (s3:ObjectCreated:* and
// s3:ObjectCreated:Put).
func sharedEvent(a, b []types.Event) string {
	for _, x := range a {
		for _, y := range b {
			if eventsOverlap(string(x), string(y)) {
				return string(x)
			}
		}
	}
	return ""
}

func eventsOverlap(x, y string) bool {
	if x == y {
		return true
	}
	fx, tx, _ := strings.Cut(strings.TrimPrefix(x, "s3:"), ":")
	fy, ty, _ := strings.Cut(strings.TrimPrefix(y, "s3:"), ":")
	return fx == fy && (tx == "*" || ty == "*")
}

func prefixesOverlap(a, b string) bool {
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

// filterPrefix is a configuration's key prefix filter, "" for none.
func filterPrefix(f *types.NotificationConfigurationFilter) string {
	if f == nil || f.Key == nil {
		return ""
	}
	for _, r := range f.Key.FilterRules {
		if strings.EqualFold(string(r.Name), "prefix") {
			return aws.ToString(r.Value)
		}
	}
	return ""
}

// SubscribeBridge turns on the bucket's delivery of every event to Amazon
// EventBridge, where a rule (the stack's, or the operator's) sends them to
// follow's queue. It never overlaps another configuration: EventBridge is
// one switch beside them. It reports false when it was on already (then
// UnsubscribeBridge must leave it on: someone else uses it).
func SubscribeBridge(ctx context.Context, api NotifyAPI, bucket string) (bool, error) {
	cur, err := api.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		return false, fmt.Errorf("read the notification configuration of s3://%s: %w", bucket, err)
	}
	if cur.EventBridgeConfiguration != nil {
		return false, nil
	}
	next := configuration(cur)
	next.EventBridgeConfiguration = &types.EventBridgeConfiguration{}
	if _, err := api.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(bucket), NotificationConfiguration: next}); err != nil {
		return false, fmt.Errorf("write the notification configuration of s3://%s (EventBridge turned on beside what was there): %w", bucket, err)
	}
	return true, nil
}

// UnsubscribeBridge turns the bucket's EventBridge delivery off again,
// leaving every other configuration as it is now. Call it only when
// SubscribeBridge turned it on.
func UnsubscribeBridge(ctx context.Context, api NotifyAPI, bucket string) (bool, error) {
	cur, err := api.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		return false, fmt.Errorf("read the notification configuration of s3://%s: %w", bucket, err)
	}
	if cur.EventBridgeConfiguration == nil {
		return false, nil
	}
	next := configuration(cur)
	next.EventBridgeConfiguration = nil
	if _, err := api.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(bucket), NotificationConfiguration: next}); err != nil {
		return false, fmt.Errorf("write the notification configuration of s3://%s (EventBridge turned off): %w", bucket, err)
	}
	return true, nil
}
