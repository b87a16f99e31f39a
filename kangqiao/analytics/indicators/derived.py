"""Tables derived from the view outputs, shared by many catalogue indicators.

The catalogue's SQL reads the view outputs (``patient``, ``encounter`` ...) and these
derived tables by name. Two kinds:

- *dimension* tables (institutions, division lookups) read only Organization and
  PractitionerRole rows; they are rebuilt whole, which is cheap and only needed when
  those resources change;
- *patient* tables have a ``patient_id`` column and are rebuilt only for the patients a
  refresh touches (see :mod:`kangqiao.analytics.indicators.engine`).

Why derived tables and not more views: a follow-up visit needs the encounter, its BP
panel and its fasting glucose together (a join across resource types), which a
ViewDefinition cannot express; doing the join once here keeps every indicator's SQL short
and makes the NBPHS indicators read the same visit rows the rules module is given.
"""

from __future__ import annotations

# DuckDB macros every query may use.
MACROS = [
    # Completed years, the civil reckoning of chronic.rules.model.age_on: born 29 Feb,
    # one year older on 1 March of a common year (228 < 229). Month and day as the number
    # MMDD, not strftime text: the same order, and formatting was a tenth of summing the
    # cells at a million residents.
    "CREATE OR REPLACE MACRO age_on(b, d) AS year(d) - year(b) - "
    "CASE WHEN month(d) * 100 + day(d) < month(b) * 100 + day(b) THEN 1 ELSE 0 END",
    # FHIR dateTimes here carry the local offset (+08:00): the first 10 characters are
    # the local calendar day, which is what "a visit in 2026" means to the county.
    "CREATE OR REPLACE MACRO local_day(ts) AS TRY_CAST(substr(ts, 1, 10) AS DATE)",
    "CREATE OR REPLACE MACRO instant(ts) AS TRY_CAST(ts AS TIMESTAMPTZ)",
    "CREATE OR REPLACE MACRO age_band(a) AS CASE WHEN a IS NULL THEN NULL "
    "WHEN a < 7 THEN '0-6' WHEN a < 18 THEN '7-17' WHEN a < 35 THEN '18-34' "
    "WHEN a < 45 THEN '35-44' WHEN a < 55 THEN '45-54' WHEN a < 65 THEN '55-64' "
    "WHEN a < 75 THEN '65-74' ELSE '75+' END",
]

CENTRE_KINDS = "('township-centre', 'community-centre')"

# name -> SQL; built in this order (later ones may read earlier ones).
DIMENSION_TABLES: dict[str, str] = {
    # An institution is an organisation that is not a hospital department: a result
    # from the county hospital's laboratory was produced by the county hospital.
    "inst": """
        SELECT o.id AS ref_id, CASE WHEN o.kind = 'department' AND o.part_of IS NOT NULL
            THEN o.part_of ELSE o.id END AS institution_id
        FROM organization o
        UNION ALL
        SELECT r.id, CASE WHEN o.kind = 'department' AND o.part_of IS NOT NULL
            THEN o.part_of ELSE r.organization END
        FROM practitioner_role r LEFT JOIN organization o ON o.id = r.organization""",
    # Township = the health centre whose division shares the 9-digit township code.
    "township_of": f"""
        SELECT substr(division, 1, 9) AS prefix, min(id) AS org_id FROM organization
        WHERE kind IN {CENTRE_KINDS} AND division IS NOT NULL GROUP BY 1""",
    "village_of": """
        SELECT division, min(id) AS org_id FROM organization
        WHERE kind = 'village-clinic' AND division IS NOT NULL GROUP BY 1""",
}

PATIENT_TABLES: dict[str, str] = {
    # One row per patient and disease under management (NBPHS "管理的患者").
    "mgmt": """
        SELECT patient_id,
            CASE kind WHEN 'htn-management' THEN 'htn' ELSE 'dm' END AS disease,
            min(local_day(start)) AS enrolled_on,
            CASE WHEN bool_or("end" IS NULL) THEN NULL ELSE max(local_day("end")) END AS ended,
            arg_max(care_manager, start) AS care_manager
        FROM episode
        WHERE kind IN ('htn-management', 'dm-management')
          AND coalesce(status, '') NOT IN ('entered-in-error', 'cancelled', 'planned', 'waitlist')
        GROUP BY 1, 2""",
    # One row per follow-up encounter with the readings taken at it (the national
    # form's visit). A phone follow-up (class VR) is a contact, not a face-to-face visit.
    "visit": """
        SELECT e.id AS encounter_id, e.patient_id,
            CASE e.kind WHEN 'htn-followup' THEN 'htn' ELSE 'dm' END AS disease,
            local_day(e.start) AS day, instant(e.start) AS ts,
            coalesce(e.class, '') NOT IN ('VR', 'PHON') AS face_to_face,
            b.bp.sbp AS sbp, b.bp.dbp AS dbp, g.glucose
        FROM encounter e
        LEFT JOIN (SELECT encounter_id, arg_max({'sbp': sbp, 'dbp': dbp}, instant(effective)) AS bp
                   FROM blood_pressure
                   WHERE NOT device AND sbp IS NOT NULL AND dbp IS NOT NULL
                     AND coalesce(status, '') NOT IN ('entered-in-error', 'cancelled')
                   GROUP BY 1) b ON b.encounter_id = e.id
        LEFT JOIN (SELECT encounter_id, arg_max(value, instant(effective)) AS glucose
                   FROM observation
                   WHERE code = '14771-0' AND value IS NOT NULL
                     AND coalesce(status, '') NOT IN ('entered-in-error', 'cancelled')
                   GROUP BY 1) g ON g.encounter_id = e.id
        WHERE e.kind IN ('htn-followup', 'dm-followup')
          AND coalesce(e.status, '') NOT IN ('planned', 'cancelled', 'entered-in-error')
          AND local_day(e.start) IS NOT NULL""",
    # The strata of a patient. Township and village come from the home address's
    # division code (where the person lives), falling back to the managing centre;
    # the doctor is the contracted family doctor, else the chronic-care manager.
    "dim": f"""
        SELECT p.patient_id, p.gender, TRY_CAST(p.birth_date AS DATE) AS birth_date,
            coalesce(p.is_resident, FALSE) AS is_resident,
            coalesce(t.org_id, CASE WHEN mo.kind IN {CENTRE_KINDS} THEN mo.id END) AS township_id,
            v.org_id AS village_id,
            coalesce(p.gp, m.care_manager) AS doctor_id
        FROM patient p
        LEFT JOIN township_of t ON t.prefix = substr(p.division, 1, 9)
        LEFT JOIN village_of v ON v.division = p.division
        LEFT JOIN organization mo ON mo.id = p.managing_org
        LEFT JOIN (SELECT patient_id, arg_max(care_manager, enrolled_on) AS care_manager
                   FROM mgmt GROUP BY 1) m ON m.patient_id = p.patient_id""",
}

DIMENSION_VIEWS = ("organization", "practitioner_role")
