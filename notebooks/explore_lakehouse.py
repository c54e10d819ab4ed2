# Databricks notebook source
# MAGIC %md
# MAGIC # webscale-rl: explore a pipeline's output
# MAGIC
# MAGIC The funnel from web pages to published QA pairs, why rows were dropped, what the QA data
# MAGIC covers (domains, answer types, examples) and the history of every table.
# MAGIC
# MAGIC On Databricks set the `schema` widget to the bundle's catalog (`main.webscale_rl`).
# MAGIC Locally the SQL cells run with `python notebooks/run_local.py --lakehouse ./lakehouse`,
# MAGIC which skips cells whose tables the lakehouse does not have yet.

# COMMAND ----------

dbutils.widgets.text("schema", "main.webscale_rl", "Unity Catalog catalog.schema")  # noqa: F821
spark.sql(f"USE {dbutils.widgets.get('schema')}")  # noqa: F821

# COMMAND ----------

# MAGIC %md
# MAGIC ## Funnel

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Documents so far: ingested, then kept by the language and quality filters.
# MAGIC SELECT 1 AS step, 'documents' AS `table`, count(*) AS `rows` FROM documents
# MAGIC UNION ALL SELECT 2, 'documents_filtered', count(*) FROM documents_filtered
# MAGIC ORDER BY step

# COMMAND ----------

# MAGIC %sql
# MAGIC -- The whole funnel, web page to published QA pair.
# MAGIC SELECT 1 AS step, 'documents' AS `table`, count(*) AS `rows` FROM documents
# MAGIC UNION ALL SELECT 2, 'documents_filtered', count(*) FROM documents_filtered
# MAGIC UNION ALL SELECT 3, 'documents_deduped', count(*) FROM documents_deduped
# MAGIC UNION ALL SELECT 4, 'annotations (informative)', count_if(informative) FROM annotations
# MAGIC UNION ALL SELECT 5, 'qa_candidates', count(*) FROM qa_candidates
# MAGIC UNION ALL SELECT 6, 'qa_verified', count(*) FROM qa_verified
# MAGIC UNION ALL SELECT 7, 'qa_deduped', count(*) FROM qa_deduped
# MAGIC UNION ALL SELECT 8, 'qa_clean', count(*) FROM qa_clean
# MAGIC UNION ALL SELECT 9, 'qa', count(*) FROM qa
# MAGIC ORDER BY step

# COMMAND ----------

# MAGIC %md
# MAGIC ## Why rows were dropped

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT stage, reason, count(*) AS n
# MAGIC FROM rejects
# MAGIC GROUP BY stage, reason
# MAGIC ORDER BY stage, n DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- A few rejected documents per filter reason, with the measured value that failed.
# MAGIC SELECT reason, detail, url
# MAGIC FROM (
# MAGIC   SELECT r.reason, r.detail, d.url,
# MAGIC          row_number() OVER (PARTITION BY r.reason ORDER BY r.row_id) AS k
# MAGIC   FROM rejects r JOIN documents d ON r.doc_id = d.doc_id
# MAGIC   WHERE r.stage = 'filter'
# MAGIC )
# MAGIC WHERE k <= 3
# MAGIC ORDER BY reason

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Languages of what came in, and how much of each language the filters kept.
# MAGIC SELECT d.lang, count(*) AS documents, count(f.doc_id) AS kept,
# MAGIC        round(count(f.doc_id) / count(*), 3) AS kept_share
# MAGIC FROM documents d LEFT JOIN documents_filtered f ON d.doc_id = f.doc_id
# MAGIC GROUP BY d.lang
# MAGIC ORDER BY documents DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Quality statistics of the kept documents: what "good" looked like on this input.
# MAGIC SELECT key AS statistic, round(avg(value), 3) AS mean,
# MAGIC        round(percentile_approx(value, 0.1), 3) AS p10,
# MAGIC        round(percentile_approx(value, 0.5), 3) AS p50,
# MAGIC        round(percentile_approx(value, 0.9), 3) AS p90
# MAGIC FROM (SELECT explode(quality_stats) FROM documents_filtered)
# MAGIC GROUP BY key
# MAGIC ORDER BY key

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Near-duplicate clusters: the largest ones, by their surviving document.
# MAGIC SELECT cluster_id, cluster_size, url
# MAGIC FROM documents_deduped
# MAGIC WHERE cluster_size > 1
# MAGIC ORDER BY cluster_size DESC
# MAGIC LIMIT 20

# COMMAND ----------

# MAGIC %md
# MAGIC ## What the QA data covers

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT domain, count(*) AS qa_pairs, count(DISTINCT doc_id) AS documents
# MAGIC FROM qa
# MAGIC GROUP BY domain
# MAGIC ORDER BY qa_pairs DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT answer_type, count(*) AS qa_pairs
# MAGIC FROM qa
# MAGIC GROUP BY answer_type
# MAGIC ORDER BY qa_pairs DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Domain x answer type.
# MAGIC SELECT domain, answer_type, count(*) AS qa_pairs
# MAGIC FROM qa
# MAGIC GROUP BY domain, answer_type
# MAGIC ORDER BY domain, qa_pairs DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Three examples per domain, with the page they came from.
# MAGIC SELECT domain, persona, question, answer, answer_type, url
# MAGIC FROM (
# MAGIC   SELECT *, row_number() OVER (PARTITION BY domain ORDER BY qa_id) AS k FROM qa
# MAGIC )
# MAGIC WHERE k <= 3
# MAGIC ORDER BY domain, k

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Domains and personas the annotator gave, and how many pages it found informative.
# MAGIC SELECT domain, count(*) AS documents, count_if(informative) AS informative,
# MAGIC        round(avg(size(personas)), 2) AS personas_per_doc
# MAGIC FROM annotations
# MAGIC GROUP BY domain
# MAGIC ORDER BY documents DESC

# COMMAND ----------

# MAGIC %sql
# MAGIC -- LLM cost of generation: tokens per model and prompt version.
# MAGIC SELECT model, prompt_version, count(*) AS qa_candidates,
# MAGIC        sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens
# MAGIC FROM qa_candidates
# MAGIC GROUP BY model, prompt_version

# COMMAND ----------

# MAGIC %md
# MAGIC ## Runs and table history
# MAGIC Every Delta commit carries the MLflow run id in `userMetadata`; every row its `run_id`.

# COMMAND ----------

# MAGIC %sql
# MAGIC DESCRIBE HISTORY documents

# COMMAND ----------

# MAGIC %sql
# MAGIC DESCRIBE HISTORY rejects

# COMMAND ----------

# MAGIC %sql
# MAGIC DESCRIBE HISTORY qa

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Rows each run added.
# MAGIC SELECT run_id, count(*) AS documents, min(ingested_at) AS first, max(ingested_at) AS last
# MAGIC FROM documents
# MAGIC GROUP BY run_id
# MAGIC ORDER BY first

# COMMAND ----------

# MAGIC %sql
# MAGIC -- Time travel: the first version of the documents table next to the current one.
# MAGIC SELECT 'version 0' AS version, count(*) AS `rows` FROM documents VERSION AS OF 0
# MAGIC UNION ALL SELECT 'current', count(*) FROM documents
