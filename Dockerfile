FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY taskhub ./taskhub
COPY workers ./workers
COPY config ./config
RUN pip install --no-cache-dir ".[sqs]" flower
USER nobody
CMD ["taskhub", "--help"]
