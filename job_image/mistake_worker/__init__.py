"""The analysis worker that runs in each batch Job pod."""
