#!/usr/bin/env bash
# make demo: start local S3 (versitygw) and SQS (local-aws-sqs) on loopback, seed a
# bucket like the original acceptance test's, clone it with the planner and two
# workers, print status, check the result independently with the aws CLI, and
# stop everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

S3_ADDR=${DEMO_S3_ADDR:-127.0.0.1:7071}
SQS_PORT=${DEMO_SQS_PORT:-9325}
OBJECTS=${DEMO_OBJECTS:-400}
WORK=$(mktemp -d -t s3clone-demo-XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The demo's credentials belong to the local server only.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demosecret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_S3="http://$S3_ADDR" AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$SQS_PORT"
S3="aws --endpoint-url $AWS_ENDPOINT_URL_S3"
SQS="aws --endpoint-url $AWS_ENDPOINT_URL_SQS sqs"

step "starting versitygw on $S3_ADDR and local-aws-sqs on 127.0.0.1:$SQS_PORT"
mkdir -p "$WORK/s3"
.tools/bin/versitygw --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" \
  --port "$S3_ADDR" --keep-alive --quiet posix "$WORK/s3" >"$WORK/versitygw.log" 2>&1 &
PIDS+=($!)
node test/sqsd/server.mjs "$SQS_PORT" >"$WORK/sqsd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  if $S3 s3 ls >/dev/null 2>&1 && grep -q listening "$WORK/sqsd.log"; then break; fi
  sleep 0.2
done
$S3 s3 ls >/dev/null || { echo "versitygw did not start:"; cat "$WORK/versitygw.log"; exit 1; }

step "seeding s3://demo-source with $OBJECTS files: half under sub/, a quarter under <0-4>/sub/"
mkdir -p "$WORK/seed"
for i in $(seq 0 $((OBJECTS - 1))); do
  if   [ "$i" -lt $((OBJECTS / 2)) ];     then dir="sub"
  elif [ "$i" -lt $((OBJECTS * 3 / 4)) ]; then dir="$((i % 5))/sub"
  else dir="."; fi
  mkdir -p "$WORK/seed/$dir"
  head -c $((100 + i * 37)) /dev/urandom >"$WORK/seed/$dir/photo-$i.jpg"
done
$S3 s3 mb s3://demo-source >/dev/null
$S3 s3 mb s3://demo-clone >/dev/null
$S3 s3 mb s3://demo-ledger >/dev/null
LEDGER=s3://demo-ledger/s3clone/
$S3 s3 cp --recursive --quiet "$WORK/seed" s3://demo-source/

step "creating the work queue (with a dead-letter queue); the run ledger is $LEDGER"
DLQ=$($SQS create-queue --queue-name demo-work-dlq --query QueueUrl --output text)
DLQ_ARN=$($SQS get-queue-attributes --queue-url "$DLQ" --attribute-names QueueArn --query Attributes.QueueArn --output text)
cat >"$WORK/redrive.json" <<JSON
{"RedrivePolicy": "{\"deadLetterTargetArn\":\"$DLQ_ARN\",\"maxReceiveCount\":\"5\"}"}
JSON
QUEUE=$($SQS create-queue --queue-name demo-work --attributes "file://$WORK/redrive.json" --query QueueUrl --output text)
echo "work queue:   $QUEUE"

step "planner plan"
bin/planner plan --source s3://demo-source --dest s3://demo-clone \
  --queue-url "$QUEUE" --ledger "$LEDGER" --log-level warn

step "two workers drain the queue (each exits after 3s with nothing to do)"
bin/worker --id worker-1 --queue-url "$QUEUE" --ledger "$LEDGER" --idle-exit 3s --log-format console 2>&1 | grep -v progress &
W1=$!
bin/worker --id worker-2 --queue-url "$QUEUE" --ledger "$LEDGER" --idle-exit 3s --log-format console 2>&1 | grep -v progress &
W2=$!
wait $W1 $W2

step "planner status (it only reads the ledger)"
bin/planner status --ledger "$LEDGER"

step "what the ledger holds"
$S3 s3 ls --recursive "$LEDGER" | awk '{print $4}' | sed -E 's#(done/[^/]+/[0-9]+/).*#\1…#' | sort | uniq -c

step "independent check with the aws CLI: every key, size and ETag of the source is in the clone"
list() { $S3 s3api list-objects-v2 --bucket "$1" --query 'Contents[].[Key,Size,ETag]' --output text | sort; }
list demo-source >"$WORK/source.txt"
list demo-clone >"$WORK/clone.txt"
if diff -u "$WORK/source.txt" "$WORK/clone.txt" >"$WORK/diff.txt"; then
  printf '\033[32mOK\033[0m: s3://demo-clone matches s3://demo-source: %s objects, same keys, sizes and ETags (MD5s)\n' "$(wc -l <"$WORK/source.txt")"
else
  echo "MISMATCH between source and clone:"; head -40 "$WORK/diff.txt"; exit 1
fi
