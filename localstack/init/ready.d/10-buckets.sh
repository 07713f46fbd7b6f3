#!/bin/bash
# LocalStack ready hook (infra/docker-compose.yml): create the test bucket.
set -euo pipefail
bucket="${S3_BUCKET:-platform-test}"
awslocal s3api head-bucket --bucket "$bucket" 2>/dev/null || awslocal s3 mb "s3://$bucket"
