# The app in a container: non-root (uid 1000, as Hugging Face Docker Spaces run), port 7860.
#   docker build -t engineered-latents .
#   docker run -p 7860:7860 -v el-data:/data engineered-latents
# CPU-only hosts: add --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu (a smaller torch).
FROM python:3.11-slim

ARG TORCH_INDEX=""
RUN useradd --create-home --uid 1000 user \
    && mkdir -p /data && chown user:user /data

ENV HF_HOME=/data/hf \
    EL_CACHE_DIR=/data/cache \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    PYTHONUNBUFFERED=1

WORKDIR /home/user/app
COPY --chown=user:user requirements.txt .
RUN if [ -n "$TORCH_INDEX" ]; then pip install --no-cache-dir torch --index-url "$TORCH_INDEX"; fi \
    && pip install --no-cache-dir -r requirements.txt
COPY --chown=user:user . .

USER user
VOLUME /data
EXPOSE 7860
CMD ["python", "app.py"]
