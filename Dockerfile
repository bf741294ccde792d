FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# DEBUG off at build time too: the served storage (hashed, compressed) needs its manifest.
RUN DEBUG=false SECRET_KEY=collectstatic-only-not-used-at-runtime python manage.py collectstatic --no-input
EXPOSE 8000
CMD ["gunicorn", "partnerinsights.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
