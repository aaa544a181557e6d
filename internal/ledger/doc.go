// Package ledger is a run's record, kept as objects on S3: what the planner
// was asked to do and which work messages it actually sent, and one entry
// per work message a worker finished. It is a store, not a transport:
// nothing in it is consumed, any number of readers see the same totals, and
// nothing expires unless the bucket's lifecycle rules say so.
//
// # Layout (version 1)
//
// Under the ledger's location s3://BUCKET/PREFIX/ (docs/design.md documents
// the same layout; it is an interface):
//
//	runs/RUN/run.json                       the run record (planner): source, destination, queue,
//	                                        options, version, started; rewritten when the plan ends
//	runs/RUN/sent/SESSION-NNNNNNNN.json     sequence numbers one planner session sent, with their
//	                                        counts, written as the queue accepts them (group commit)
//	runs/RUN/done/JOURNAL/BBBBB/ENTRY.json  one finished work message (worker); ENTRY carries the
//	                                        counts, so totals come from listings alone
//	workers/JOURNAL.json                    a worker process: its id, version, start (its write check)
//
// RUN is a run id (20261201T162343Z-ab12cd34: time first, so runs list in
// the order they started). JOURNAL names one worker process (its id and a
// random suffix); within a journal, each run's entries are numbered from 1
// and grouped a thousand to a folder BBBBB, so a reader lists a journal's
// new entries with one StartAfter request and reads a large run with many
// listings at once. ENTRY is
//
//	NNNNNNNNNN-qSEQ-cCOPIED-dDELETED-sSKIPPED-fFAILED-bBYTES-tSTARTMS-uDURATIONMS.json
//
// and its body holds everything: the counts, the skipped and failed keys
// with their reasons, the worker and the timings.
//
// # Counting
//
// A work message is identified by (run, sequence number). A message that
// SQS delivered twice and two workers both finished has two entries; a
// reader keeps the one that finished first (ties broken by key), so every
// reader counts each message once and all readers agree. A run is complete
// when its plan has ended and every sequence number in its sent records has
// an entry: a set, not a count, so a resumed plan that sent some keys again
// under new numbers is complete only when those are done too.
package ledger
