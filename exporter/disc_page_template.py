"""The HTML, CSS and JS of the disc's ``index.html`` (data is spliced in at ``/*DATA*/null``).

Kept as a Python string so it ships with the package. No network: no fonts, no CDN, no fetch()
and no <track src> (Chromium refuses both from file:// pages: the time code comes from each video's
``.cues.js``, loaded by <script src>); the disc check reads files the user picks.
The SHA-256 is a small incremental implementation because crypto.subtle cannot hash a file in
pieces and disc files can be up to 4 GiB.
"""

PAGE = r"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>全程录音录像光盘 Full-process recording disc</title>
<style>
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b63;color:#fff;padding:12px 20px}header h1{margin:0;font-size:20px}
header button{float:right}main{padding:12px 20px}section{background:#fff;border:1px solid #ddd;margin:12px 0;padding:10px 14px}
.tl{position:relative;height:16px;background:#eee;margin:2px 0 6px 0}.tl span{position:absolute;top:0;bottom:0}
.ft{background:#2e8b57}.gp{background:#d9534f}.ux{background:repeating-linear-gradient(45deg,#555,#555 3px,#bbb 3px,#bbb 6px)}
.cam{font-size:12px;color:#555}.legend span{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px}
video{max-width:100%;width:640px;background:#000;display:block}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}
.bad{color:#b00;font-weight:bold}.ok{color:#070;font-weight:bold}.muted{color:#777}tr.late td{background:#fff3cd}
</style>
<script src="disc.js"></script></head><body>
<header><button id="lang">English</button><h1 id="title"></h1><div id="sub"></div></header>
<main>
<section><h2 data-t="overview"></h2><div id="overview"></div>
<div class="legend"><span class="ft"></span><b data-t="footage"></b><span class="gp"></span><b data-t="gap"></b><span class="ux"></span><b data-t="unexplained"></b></div>
<div id="links"></div><p id="key"></p></section>
<div id="stages"></div>
<section id="sound" hidden><h2 data-t="sound"></h2><p data-t="soundhelp"></p><ul id="soundlist"></ul></section>
<section><h2 data-t="events"></h2><table id="events"></table></section>
<section id="latebox"><h2 data-t="late_entries"></h2><p data-t="latehelp"></p><table id="late"></table></section>
<section><h2 data-t="check"></h2><p data-t="checkhelp"></p>
<input type="file" id="pick" webkitdirectory multiple><div id="checkout"></div></section>
<pre id="selftest"></pre>
</main>
<script>
"use strict";
var D = /*DATA*/null;
var DISC = window.DISC || null;
var T = {
 zh:{overview:"概览",footage:"录像",gap:"中断（含原因）",unexplained:"未说明",events:"事件",check:"校验光盘",
  checkhelp:"选择光盘根目录，页面将逐个计算 SHA-256 并与清单比对（也可运行 python3 verify.py）。",
  other:"该文件在第 %d 张光盘上",range:"范围",rooms:"房间",camera:"摄像机",time:"时间",type:"事件",room:"房间",
  statement:"录音录像说明",gaps:"录像中断报告",custody:"证据保管链",manifest:"文件清单",disc:"光盘",missing:"缺失",match:"一致",differ:"不一致",
  subs:"时间字幕",chap:"章节",srclang:"zh-CN",done:"校验完成",lang:"English",
  sound:"原始录像（含原始声音）",master:"该文件在母盘（master）上",
  soundhelp:"原始录像（originals/）中的 G.711 声音没有编码标识，浏览器和常用播放器播放时无声。下列 MKV 文件是原始录像的逐字节转封装（未解码、未重新编码）：请用 VLC 或 ffplay 打开，即可听到原始声音。verify.py 核对其声音与原始录像逐字节相同。",
  late:"补录",late_entries:"补录条目",latehelp:"以下记录在事后（超过补录时限或在已导出范围内）由主管、法制或管理员补录。",
  kind:"类别",by:"录入人",at:"录入时间",event:"事件",observation:"位置记录",
  keyfp:"签名公钥指纹（应与纸质录音录像说明上的一致；python3 verify.py --expect-key 指纹）："},
 en:{overview:"Overview",footage:"Footage",gap:"Gap (with cause)",unexplained:"Unexplained",events:"Events",check:"Check this disc",
  checkhelp:"Pick the disc's root folder; the page computes each file's SHA-256 and compares it with the list (or run python3 verify.py).",
  other:"This file is on disc %d",range:"Range",rooms:"Rooms",camera:"Camera",time:"Time",type:"Event",room:"Room",
  statement:"Recording statement",gaps:"Gap report",custody:"Chain of custody",manifest:"Manifest",disc:"Disc",missing:"missing",match:"match",differ:"DIFFERS",
  subs:"Time code",chap:"Chapters",srclang:"en",done:"Check finished",lang:"中文",
  sound:"Originals with their sound",master:"This file is on the master copy",
  soundhelp:"The G.711 sound in the originals (originals/) carries no codec label, so browsers and common players play them silent. The MKV files below are byte-for-byte remuxes of the originals (nothing decoded or re-encoded): open them in VLC or ffplay to hear the original sound. verify.py checks that their sound equals the originals' byte for byte.",
  late:"late entry",late_entries:"Late entries",latehelp:"Entered after the fact (past the late-entry window, or inside a range already exported) by a supervisor, legal or admin user.",
  kind:"Kind",by:"Entered by",at:"Entered at",event:"Event",observation:"Location reading",
  keyfp:"Signing key fingerprint (must be the one on the paper recording statement; python3 verify.py --expect-key FINGERPRINT): "}};
var lang = (location.search.indexOf("lang=en") >= 0) ? "en" : "zh";
function t(k){return T[lang][k];}
function el(tag, attrs, text){var e=document.createElement(tag);for(var k in (attrs||{}))e.setAttribute(k,attrs[k]);if(text!=null)e.textContent=text;return e;}
function ms(s){return Date.parse(s);}
function bar(parent, start, end, parts, cls, tip){
  parts.forEach(function(p){var a=ms(p.start),b=ms(p.end),w=end-start;if(w<=0)return;
    var s=el("span",{"class":cls,title:(tip?tip(p)+" ":"")+p.start_local+" — "+p.end_local});
    s.style.left=(100*(Math.max(a,start)-start)/w)+"%";s.style.width=Math.max(0.2,100*(Math.min(b,end)-Math.max(a,start))/w)+"%";parent.appendChild(s);});
}
function onThisDisc(path){
  if(!DISC) return true;
  var n = DISC.where[path];
  return n === undefined || n === 0 || n === DISC.disc;
}
function discOf(path){return DISC ? DISC.where[path] : 0;}
// The time code comes from <video>.cues.js, not <track src>: Chromium refuses a track's file:
// URL from a file:// page but runs a <script src>. A video's script is loaded the first time it
// plays or seeks (a disc can hold days of one-cue-a-second footage) and kept for re-renders.
var cueWait={};
function withCues(v,cb){
  var have=(window.DISC_CUES||{})[v.path];
  if(have){cb(have);return;}
  if(cueWait[v.path]){cueWait[v.path].push(cb);return;}
  cueWait[v.path]=[cb];
  var s=el("script",{src:v.cues});
  s.onload=function(){var w=cueWait[v.path]||[],c=(window.DISC_CUES||{})[v.path]||[];delete cueWait[v.path];w.forEach(function(f){f(c);});};
  s.onerror=function(){delete cueWait[v.path];};
  document.head.appendChild(s);
}
function timeCodeOnDemand(vid,v){
  var asked=false;
  function ask(){if(asked)return;asked=true;withCues(v,function(cues){
    var tr=vid.addTextTrack("subtitles",t("subs"),t("srclang"));
    cues.forEach(function(c){tr.addCue(new VTTCue(c[0]/1000,c[1]/1000,c[2]));});tr.mode="showing";});}
  vid.addEventListener("play",ask);vid.addEventListener("seeking",ask);
}
function render(){
  document.documentElement.lang = lang==="zh"?"zh-CN":"en";
  document.querySelectorAll("[data-t]").forEach(function(e){e.textContent=t(e.getAttribute("data-t"));});
  document.getElementById("lang").textContent=t("lang");
  document.getElementById("title").textContent=D.case.number+" · "+D.case.title+" · "+D.subject.name;
  document.getElementById("sub").textContent=(lang==="zh"?"案由：":"Charge: ")+D.case.charge+" · "+t("range")+": "+D.range.start_local+" — "+D.range.end_local+" ("+D.time_zone+")"+(DISC?" · "+t("disc")+" "+DISC.disc+"/"+DISC.discs+" ("+DISC.copy+")":"");
  var ov=document.getElementById("overview");ov.innerHTML="";
  var a=ms(D.range.start),b=ms(D.range.end),tl=el("div",{"class":"tl"});
  D.stages.forEach(function(s){bar(tl,a,b,[s],"ft",function(){return lang==="zh"?s.label_zh:s.label_en;});});
  bar(tl,a,b,D.gaps.unexplained,"ux");D.gaps.gaps.forEach(function(g){bar(tl,a,b,[g],"gp",function(){return g.cause_label;});});
  ov.appendChild(tl);
  var links=document.getElementById("links");links.innerHTML="";
  [["statement.html","statement"],["statement.pdf","statement"],["gaps.html","gaps"],["custody.html","custody"],["manifest.json","manifest"]].forEach(function(l){
    var x=el("a",{href:l[0]},t(l[1])+" ("+l[0]+")");links.appendChild(x);links.appendChild(document.createTextNode("  "));});
  var kp=document.getElementById("key");kp.textContent="";
  if(D.key){kp.appendChild(document.createTextNode(t("keyfp")));kp.appendChild(el("code",{},D.key.grouped));}
  var st=document.getElementById("stages");st.innerHTML="";
  D.stages.forEach(function(s){
    var sec=el("section",{id:"stage-"+s.slug});sec.appendChild(el("h2",null,(lang==="zh"?s.label_zh:s.label_en)));
    sec.appendChild(el("div",null,s.start_local+" — "+s.end_local+" · "+t("rooms")+": "+s.rooms.join(", ")));
    var sa=ms(s.start),sb=ms(s.end);
    s.cameras.forEach(function(c){
      sec.appendChild(el("div",{"class":"cam"},t("camera")+" "+c.camera_id));
      var row=el("div",{"class":"tl","data-camera":c.camera_id});bar(row,sa,sb,c.footage,"ft");
      bar(row,sa,sb,c.gaps,"gp",function(g){return g.label+(g.detail?" "+g.detail:"");});bar(row,sa,sb,c.unexplained,"ux");sec.appendChild(row);
      c.gaps.forEach(function(g){sec.appendChild(el("div",{"class":"bad gapnote"},g.label+" "+g.start_local+" — "+g.end_local+(g.detail?" ("+g.detail+")":"")));});
    });
    s.videos.forEach(function(v){
      sec.appendChild(el("div",{"class":"cam"},v.camera+" · "+v.rendition+" · "+v.path+" · "+v.start_local+" — "+v.end_local));
      if(!onThisDisc(v.path)){sec.appendChild(el("div",{"class":"muted"},t("other").replace("%d",discOf(v.path))));return;}
      if(!v.playable){var ln=el("a",{href:v.path},v.path);sec.appendChild(ln);return;}
      var vid=el("video",{controls:"",preload:"metadata",src:v.path,"data-path":v.path});
      sec.appendChild(vid);
      if(v.cues)timeCodeOnDemand(vid,v);
      var chs=v.chapter_list||[];
      if(chs.length){var ct=vid.addTextTrack("chapters",t("chap"),t("srclang")),ul=el("ul",{"class":"chapters"});
        chs.forEach(function(c){var title=lang==="zh"?c[2]:c[3];ct.addCue(new VTTCue(c[0]/1000,c[1]/1000,title));
          var li=el("li"),btn=el("a",{href:"#","data-path":v.path},title);btn.onclick=function(ev){ev.preventDefault();vid.currentTime=c[0]/1000;vid.play();};
          li.appendChild(btn);ul.appendChild(li);});
        ct.mode="hidden";sec.appendChild(ul);}
    });
    st.appendChild(sec);
  });
  var snd=D.originals_with_sound||[],sl=document.getElementById("soundlist");sl.innerHTML="";
  document.getElementById("sound").hidden=!snd.length;
  snd.forEach(function(o){var li=el("li",null,o.camera+" · "+o.stage+" · "+o.codec+" · "+o.start_local+" — "+o.end_local+" · ");
    if(DISC&&!(o.path in DISC.where))li.appendChild(el("span",{"class":"muted"},t("master")));
    else if(!onThisDisc(o.path))li.appendChild(el("span",{"class":"muted"},t("other").replace("%d",discOf(o.path))));
    else li.appendChild(el("a",{href:o.path},o.path));
    sl.appendChild(li);});
  var ev=document.getElementById("events");ev.innerHTML="";
  var h=el("tr");[t("time"),t("type"),t("room"),""].forEach(function(x){h.appendChild(el("th",null,x));});ev.appendChild(h);
  D.events.forEach(function(e){var r=el("tr");[e.local,e.label,e.room||"",e.late?t("late"):""].forEach(function(x){r.appendChild(el("td",null,x));});if(e.late)r.className="late";ev.appendChild(r);});
  var late=D.late_entries||[],lt=document.getElementById("late");lt.innerHTML="";
  document.getElementById("latebox").style.display=late.length?"":"none";
  var lh=el("tr");[t("time"),t("kind"),t("type"),t("room"),t("by"),t("at")].forEach(function(x){lh.appendChild(el("th",null,x));});lt.appendChild(lh);
  late.forEach(function(x){var r=el("tr");[x.local,t(x.kind),x.label,x.room||"",x.by,x.at].forEach(function(v){r.appendChild(el("td",null,v));});lt.appendChild(r);});
}
document.getElementById("lang").onclick=function(){lang=lang==="zh"?"en":"zh";render();};
// Incremental SHA-256 (FIPS 180-4) over File.slice() chunks.
var K=new Uint32Array([0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2]);
function Sha256(){this.h=new Uint32Array([0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19]);this.buf=new Uint8Array(64);this.n=0;this.len=0;this.w=new Uint32Array(64);}
Sha256.prototype.block=function(p,o){var w=this.w,h=this.h,i,a,b,c,d,e,f,g,hh,t1,t2,x,y;
 for(i=0;i<16;i++)w[i]=(p[o+4*i]<<24)|(p[o+4*i+1]<<16)|(p[o+4*i+2]<<8)|p[o+4*i+3];
 for(i=16;i<64;i++){x=w[i-15];y=w[i-2];w[i]=(((x>>>7)|(x<<25))^((x>>>18)|(x<<14))^(x>>>3))+w[i-16]+(((y>>>17)|(y<<15))^((y>>>19)|(y<<13))^(y>>>10))+w[i-7];}
 a=h[0];b=h[1];c=h[2];d=h[3];e=h[4];f=h[5];g=h[6];hh=h[7];
 for(i=0;i<64;i++){t1=hh+(((e>>>6)|(e<<26))^((e>>>11)|(e<<21))^((e>>>25)|(e<<7)))+((e&f)^(~e&g))+K[i]+w[i];
  t2=(((a>>>2)|(a<<30))^((a>>>13)|(a<<19))^((a>>>22)|(a<<10)))+((a&b)^(a&c)^(b&c));hh=g;g=f;f=e;e=(d+t1)|0;d=c;c=b;b=a;a=(t1+t2)|0;}
 h[0]+=a;h[1]+=b;h[2]+=c;h[3]+=d;h[4]+=e;h[5]+=f;h[6]+=g;h[7]+=hh;};
Sha256.prototype.update=function(d){var i=0;this.len+=d.length;
 if(this.n){while(this.n<64&&i<d.length)this.buf[this.n++]=d[i++];if(this.n===64){this.block(this.buf,0);this.n=0;}}
 for(;i+64<=d.length;i+=64)this.block(d,i);while(i<d.length)this.buf[this.n++]=d[i++];};
Sha256.prototype.hex=function(){var bits=this.len*8,pad=new Uint8Array(((this.n<56)?56:120)-this.n+8);pad[0]=0x80;
 var hi=Math.floor(bits/4294967296),lo=bits>>>0,L=pad.length;pad[L-8]=hi>>>24;pad[L-7]=hi>>>16;pad[L-6]=hi>>>8;pad[L-5]=hi;pad[L-4]=lo>>>24;pad[L-3]=lo>>>16;pad[L-2]=lo>>>8;pad[L-1]=lo;
 this.update(pad);var s="";for(var i=0;i<8;i++)s+=("00000000"+this.h[i].toString(16)).slice(-8);return s;};
function hashFile(file){return new Promise(function(res,rej){var hs=new Sha256(),off=0,CH=4<<20;
  function next(){if(off>=file.size){res(hs.hex());return;}file.slice(off,off+CH).arrayBuffer().then(function(buf){hs.update(new Uint8Array(buf));off+=CH;next();},rej);}next();});}
document.getElementById("pick").onchange=function(ev){
  var out=document.getElementById("checkout");out.innerHTML="";var byPath={};
  Array.prototype.forEach.call(ev.target.files,function(f){var p=(f.webkitRelativePath||f.name).split("/").slice(1).join("/");byPath[p]=f;});
  var tbl=el("table");out.appendChild(tbl);var bad=0;
  var todo=D.files.filter(function(f){return !DISC||(f.path in DISC.where&&onThisDisc(f.path));});
  (function step(i){if(i>=todo.length){out.appendChild(el("p",{"class":bad?"bad":"ok"},t("done")+": "+(bad?bad+" ✗":"✓")));return;}
    var f=todo[i],r=el("tr");r.appendChild(el("td",null,f.path));tbl.appendChild(r);
    if(!byPath[f.path]){bad++;r.appendChild(el("td",{"class":"bad"},t("missing")));step(i+1);return;}
    hashFile(byPath[f.path]).then(function(h){var ok=h===f.sha256;if(!ok)bad++;r.appendChild(el("td",{"class":ok?"ok":"bad"},ok?t("match"):t("differ")));step(i+1);});
  })(0);
};
render();
if(location.hash==="#selftest"){
  var v=document.querySelector("video"),o=document.getElementById("selftest");
  if(!v){o.textContent="selftest: no video";}else{v.muted=true;
    v.addEventListener("error",function(){o.textContent="selftest: media error "+(v.error&&v.error.code);});
    var p=v.play();if(p&&p.catch)p.catch(function(e){o.textContent="selftest: play rejected "+e;});
    var timer=setInterval(function(){if(v.currentTime>0.5){clearInterval(timer);o.textContent="selftest: playing currentTime="+v.currentTime.toFixed(2)+" duration="+v.duration.toFixed(2);}},100);}
}
</script></body></html>
"""
