// Package listing enumerates every object under an S3 prefix with many
// ListObjectsV2 calls in flight at once, streaming pages of objects to the
// caller as they arrive.
//
// The key space is cut into shards three ways:
//
//   - a delimiter walk: a shard listed with Delimiter "/" yields the objects at
//     its own level and its common prefixes, and each common prefix becomes a
//     shard of its own, at any depth, until a budget of walked prefixes is
//     spent;
//   - subtree groups: past that budget, the common prefixes of one page become
//     a single flat shard (no delimiter) covering all their subtrees, so a level
//     with a million "directories" costs a thousand requests, not a million;
//   - key ranges: whenever a lister sees that another lister is idle, the rest
//     of its shard is cut in two at a key between the last key it saw and the
//     shard's end, and the upper half listed from there with StartAfter. This
//     is what spreads a flat prefix over many listers.
//
// Every object is emitted exactly once: shards never overlap and together
// cover the prefix (see shard for the invariants). Memory is bounded by the
// number of pending shards and pages in flight, never by the bucket's size.
package listing
