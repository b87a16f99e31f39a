"""Institutions of the medical community: Organizations, Locations, Practitioners,
PractitionerRoles and family-doctor teams (CareTeam).

Structure: the county hospital (lead of the 医共体, with departments), the county TCM
hospital, one township health centre (乡镇卫生院) per township (``partOf`` the county
hospital), one village clinic (村卫生室) per village (``partOf`` its health centre), the
county CDC and the county health commission.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from kangqiao.synth.common import (
    CS_INSTITUTION,
    CS_QUALIFICATION,
    CS_ROLE,
    CS_SPECIALTY,
    HL7_PRACT_ROLE,
    LOINC,
    ORG_CODE_SYSTEM,
    ORG_TYPE,
    PRACTITIONER_LICENSE_SYSTEM,
    IdFactory,
    Resource,
    concept,
    ref,
    weighted,
)
from kangqiao.synth.geography import County, Township, Village, address, offset
from kangqiao.synth.names import human_names, make_name, pick_surname

V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CATCHMENT_EXT = "https://kangqiao.example/fhir/StructureDefinition/catchment-division"

# code, Chinese name, v3 RoleCode of its location
DEPARTMENTS = (
    ("cardiology", "心血管内科", "CARD"),
    ("endocrinology", "内分泌科", "ENDO"),
    ("general-internal", "普通内科", "GIM"),
    ("general-practice", "全科医学科", "FMC"),
    ("respiratory", "呼吸内科", "GIM"),
    ("infectious", "感染科", "INFD"),
    ("pediatrics", "儿科", "PEDC"),
    ("obstetrics", "妇产科", "OB"),
    ("surgery", "普外科", "SU"),
    ("emergency", "急诊科", "GIM"),
    ("laboratory", "检验科", "GIM"),
)
ROLE_DISPLAY = {
    "village-doctor": "乡村医生",
    "gp": "全科医生",
    "specialist": "专科医生",
    "public-health": "公共卫生医师",
    "nurse": "护士",
    "clinician": "临床医生",
    "lab": "检验技师",
}


@dataclass(frozen=True, slots=True)
class Staff:
    role_id: str
    practitioner_id: str
    name: str
    org_id: str
    kind: str


@dataclass
class Team:
    id: str
    name: str
    members: list[Staff]
    villages: list[int]

    @property
    def leader(self) -> Staff:
        return self.members[0]


@dataclass
class Clinic:
    org_id: str
    location_id: str
    doctors: list[Staff] = field(default_factory=list)


@dataclass
class HealthCentre:
    org_id: str
    location_id: str
    gps: list[Staff] = field(default_factory=list)
    nurses: list[Staff] = field(default_factory=list)
    public_health: list[Staff] = field(default_factory=list)
    clinicians: list[Staff] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)
    clinics: list[Clinic] = field(default_factory=list)
    team_of_village: dict[int, Team] = field(default_factory=dict)


@dataclass
class Institutions:
    county_hospital: str
    county_hospital_location: str
    tcm_hospital: str
    cdc: str
    commission: str
    departments: dict[str, str]
    department_locations: dict[str, str]
    specialists: dict[str, list[Staff]]
    tcm_doctors: list[Staff]
    cdc_staff: list[Staff]
    centres: list[HealthCentre]
    resources: list[Resource]


def phone(rng: random.Random) -> str:
    return f"1{rng.choice('35789')}{rng.randint(0, 9)}{rng.randint(0, 99_999_999):08d}"


def landline(rng: random.Random) -> str:
    return f"0745-{rng.randint(2_000_000, 8_999_999)}"


class _Builder:
    def __init__(self, rng: random.Random, county: County, residents: int, year: int) -> None:
        self.rng = rng
        self.year = year
        self.county = county
        self.residents = residents
        self.ids = IdFactory()
        self.out: list[Resource] = []
        self.org_seq = 0

    def org(
        self,
        oid: str,
        name: str,
        kind: str,
        display: str,
        hl7_type: str,
        town: Township,
        village: Village | None,
        part_of: str | None = None,
        loc: tuple[float, float, str] | None = None,
    ) -> str:
        self.org_seq += 1
        res: Resource = {
            "resourceType": "Organization",
            "id": oid,
            "identifier": [{"system": ORG_CODE_SYSTEM, "value": f"{town.code}{self.org_seq:04d}"}],
            "active": True,
            "type": [concept(ORG_TYPE, hl7_type), concept(CS_INSTITUTION, kind, display)],
            "name": name,
        }
        if hl7_type != "dept":
            res["telecom"] = [{"system": "phone", "value": landline(self.rng), "use": "work"}]
            res["address"] = [address(self.county, town, village, "1号", use="work")]
        if part_of:
            res["partOf"] = ref("Organization", part_of)
        self.out.append(res)
        if loc is None:
            return oid
        lat, lon, role_code = loc
        lid = "loc-" + oid.removeprefix("org-")
        location: Resource = {
            "resourceType": "Location",
            "id": lid,
            "status": "active",
            "name": name,
            "mode": "instance",
            "address": address(self.county, town, village, "1号", use="work"),
            "position": {"longitude": lon, "latitude": lat},
            "managingOrganization": ref("Organization", oid),
        }
        if role_code:
            location["type"] = [concept(V3_ROLE_CODE, role_code)]
        self.out.append(location)
        return oid

    def staff(
        self, org_id: str, kind: str, specialty: str, location_id: str, young: float
    ) -> Staff:
        rng = self.rng
        sex = "male" if rng.random() < (0.35 if kind == "nurse" else 0.6) else "female"
        if kind == "nurse":
            sex = "female" if rng.random() < 0.95 else "male"
        age = rng.randint(24, 34) if rng.random() < young else rng.randint(35, 62)
        born_year = self.year - age
        name = make_name(rng, sex, born_year, pick_surname(rng))
        pid = self.ids.next("prac")
        rid = self.ids.next("role")
        qual = {
            "village-doctor": ("village-doctor", "乡村医生执业证书"),
            "nurse": ("registered-nurse", "护士执业证书"),
        }.get(kind, ("licensed-physician", "医师执业证书"))
        practitioner: Resource = {
            "resourceType": "Practitioner",
            "id": pid,
            "identifier": [
                {
                    "system": PRACTITIONER_LICENSE_SYSTEM,
                    "value": f"{rng.randint(10**14, 10**15 - 1)}",
                }
            ],
            "active": True,
            "name": human_names(name),
            "telecom": [{"system": "phone", "value": phone(rng), "use": "work"}],
            "gender": sex,
            "birthDate": f"{born_year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "qualification": [{"code": concept(CS_QUALIFICATION, qual[0], qual[1])}],
        }
        if kind == "gp":
            practitioner["qualification"].append(
                {"code": concept(CS_QUALIFICATION, "gp-registered", "全科医生注册")}
            )
        hl7 = "nurse" if kind == "nurse" else "doctor"
        role: Resource = {
            "resourceType": "PractitionerRole",
            "id": rid,
            "active": True,
            "practitioner": ref("Practitioner", pid, name.text),
            "organization": ref("Organization", org_id),
            "code": [concept(HL7_PRACT_ROLE, hl7), concept(CS_ROLE, kind, ROLE_DISPLAY[kind])],
            "specialty": [concept(CS_SPECIALTY, specialty)],
            "location": [ref("Location", location_id)],
        }
        self.out.extend((practitioner, role))
        return Staff(rid, pid, name.text, org_id, kind)


def build_institutions(
    rng: random.Random, county: County, residents: int, year: int
) -> Institutions:
    b = _Builder(rng, county, residents, year)
    seat = county.townships[0]
    ch = b.org(
        "org-county-hospital",
        f"{county.name}人民医院",
        "county-hospital",
        "县级综合医院",
        "prov",
        seat,
        None,
        loc=(seat.lat, seat.lon, "HOSP"),
    )
    departments: dict[str, str] = {}
    dept_locations: dict[str, str] = {}
    for code, zh, role_code in DEPARTMENTS:
        oid = b.org(
            f"org-dept-{code}",
            f"{county.name}人民医院{zh}",
            "department",
            "科室",
            "dept",
            seat,
            None,
            part_of=ch,
            loc=(seat.lat, seat.lon, role_code),
        )
        departments[code] = oid
        dept_locations[code] = "loc-" + oid.removeprefix("org-")
    tlat, tlon = offset(seat.lat, seat.lon, 1.2, 1.0)
    tcm = b.org(
        "org-tcm-hospital",
        f"{county.name}中医医院",
        "tcm-hospital",
        "县级中医医院",
        "prov",
        seat,
        None,
        part_of=ch,
        loc=(tlat, tlon, "HOSP"),
    )
    clat, clon = offset(seat.lat, seat.lon, 0.8, 2.5)
    cdc = b.org(
        "org-cdc",
        f"{county.name}疾病预防控制中心",
        "cdc",
        "疾病预防控制中心",
        "govt",
        seat,
        None,
        loc=(clat, clon, ""),
    )
    commission = b.org(
        "org-health-commission",
        f"{county.name}卫生健康局",
        "health-commission",
        "卫生健康行政部门",
        "govt",
        seat,
        None,
    )
    per_dept = max(2, min(25, 2 + residents // 50_000))
    specialists = {
        code: [
            b.staff(
                departments[code],
                "lab" if code == "laboratory" else "specialist",
                code,
                dept_locations[code],
                young=0.25,
            )
            for _ in range(per_dept)
        ]
        for code, _, _ in DEPARTMENTS
    }
    for code in ("cardiology", "endocrinology", "general-internal", "pediatrics"):
        b.staff(departments[code], "nurse", "nursing", dept_locations[code], young=0.4)
    tcm_doctors = [
        b.staff(tcm, "specialist", "tcm", "loc-tcm-hospital", young=0.2)
        for _ in range(max(2, per_dept // 2))
    ]
    cdc_staff = [
        b.staff(cdc, "public-health", "public-health", "loc-cdc", young=0.2) for _ in range(3)
    ]
    centres = [_centre(b, county, town, ch) for town in county.townships]
    return Institutions(
        ch,
        "loc-county-hospital",
        tcm,
        cdc,
        commission,
        departments,
        dept_locations,
        specialists,
        tcm_doctors,
        cdc_staff,
        centres,
        b.out,
    )


def _centre(b: _Builder, county: County, town: Township, lead: str) -> HealthCentre:
    rng = b.rng
    n = town.index + 1
    kind, display = (
        ("community-centre", "社区卫生服务中心")
        if town.is_seat
        else ("township-centre", "乡镇卫生院")
    )
    suffix = "社区卫生服务中心" if town.is_seat else "卫生院"
    oid = b.org(
        f"org-thc-{n:02d}",
        f"{county.name}{town.name}{suffix}",
        kind,
        display,
        "prov",
        town,
        None,
        part_of=lead,
        loc=(town.lat, town.lon, "PC"),
    )
    centre = HealthCentre(oid, "loc-" + oid.removeprefix("org-"))
    young = 0.15  # grassroots doctors under 35: < 20% (seed report 基层医生队伍建设)
    for v in town.villages:
        coid = b.org(
            f"org-vc-{n:02d}-{v.index + 1:02d}",
            f"{town.name}{v.name}卫生室",
            "village-clinic",
            "村卫生室",
            "prov",
            town,
            v,
            part_of=oid,
            loc=(v.lat, v.lon, "PC"),
        )
        clinic = Clinic(coid, "loc-" + coid.removeprefix("org-"))
        n_doc = 1 if v.quota < 900 else weighted(rng, [(1, 0.3), (2, 0.5), (3, 0.2)])
        clinic.doctors = [
            b.staff(coid, "village-doctor", "general-practice", clinic.location_id, young=0.08)
            for _ in range(n_doc)
        ]
        centre.clinics.append(clinic)
    n_teams = min(len(town.villages), max(1, math.ceil(town.quota / 2000)))
    n_clin = 1 + town.quota // 10_000
    n_vd = sum(len(c.doctors) for c in centre.clinics)
    # general practitioners are ~30% of grassroots doctors (seed report 基层医生队伍建设)
    n_gp = max(n_teams, round(0.43 * (n_vd + n_clin)))
    loc = centre.location_id
    centre.gps = [b.staff(oid, "gp", "general-practice", loc, young) for _ in range(n_gp)]
    centre.clinicians = [
        b.staff(oid, "clinician", "internal-medicine", loc, young) for _ in range(n_clin)
    ]
    centre.nurses = [
        b.staff(oid, "nurse", "nursing", loc, 0.3) for _ in range(n_teams + 1 + town.quota // 5000)
    ]
    centre.public_health = [
        b.staff(oid, "public-health", "public-health", loc, young)
        for _ in range(max(1, math.ceil(n_teams / 2)))
    ]
    for t in range(n_teams):
        villages = [v.index for v in town.villages if v.index % n_teams == t]
        members = [centre.gps[i] for i in range(t, n_gp, n_teams)]
        members.append(centre.nurses[t])
        members.append(centre.public_health[t % len(centre.public_health)])
        members += [d for i in villages for d in centre.clinics[i].doctors]
        team = Team(
            f"team-{n:02d}-{t + 1:02d}", f"{town.name}家庭医生团队{t + 1}", members, villages
        )
        centre.teams.append(team)
        for i in villages:
            centre.team_of_village[i] = team
        b.out.append(
            {
                "resourceType": "CareTeam",
                "id": team.id,
                "extension": [
                    {"url": CATCHMENT_EXT, "valueCode": town.villages[i].code} for i in villages
                ],
                "status": "active",
                "category": [
                    concept(LOINC, "LA28865-6", "Longitudinal care-coordination focused care team")
                ],
                "name": team.name,
                "participant": [
                    {
                        "role": [concept(CS_ROLE, m.kind, ROLE_DISPLAY[m.kind])],
                        "member": ref("PractitionerRole", m.role_id, m.name),
                    }
                    for m in members
                ],
                "managingOrganization": [ref("Organization", oid)],
            }
        )
    return centre
